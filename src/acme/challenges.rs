//! The HTTP-01 answers this node serves: token → key authorization,
//! replaced whole from the store's list.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The answers in force.
#[derive(Debug, Default)]
pub struct Challenges {
    answers: ArcSwap<HashMap<String, Arc<str>>>,
}

impl Challenges {
    /// Serve exactly `answers` (`(token, key authorization)`).
    pub fn publish(&self, answers: &[(String, String)]) {
        let map = answers
            .iter()
            .map(|(token, answer)| (token.clone(), Arc::from(answer.as_str())))
            .collect();
        self.answers.store(Arc::new(map));
    }

    /// The key authorization for `token`, if a challenge is open.
    pub fn answer(&self, token: &str) -> Option<Arc<str>> {
        self.answers.load().get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_answers_replace_the_old_ones() {
        let challenges = Challenges::default();
        challenges.publish(&[("a".into(), "a.key".into()), ("b".into(), "b.key".into())]);
        assert_eq!(challenges.answer("a").as_deref(), Some("a.key"));
        assert_eq!(challenges.answer("b").as_deref(), Some("b.key"));
        challenges.publish(&[("c".into(), "c.key".into())]);
        assert_eq!(challenges.answer("a"), None);
        assert_eq!(challenges.answer("c").as_deref(), Some("c.key"));
    }
}
