//! Queue selection: asynq's weighted random order (each queue appears `priority` times in a list
//! that is shuffled, then de-duplicated) or a fixed strict-priority order.

use crate::options::DEFAULT_QUEUE;

/// Picks the order in which queues are tried for each dequeue.
#[derive(Debug, Clone)]
pub struct QueueSelector {
    /// (name, priority after GCD normalisation), highest priority first.
    queues: Vec<(String, u32)>,
    strict: bool,
    /// Index of each queue repeated `priority` times (weighted mode).
    expanded: Vec<usize>,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Queues and priorities as the selector serves them: blank names and priorities ≤ 0 dropped
/// (a server's config refuses them; tooling may pass anything), `{"default": 1}` when nothing is
/// left, priorities divided by their GCD, highest first (equal ones keep the caller's order).
pub fn normalized(queues: &[(String, i32)]) -> Vec<(String, u32)> {
    let mut qs: Vec<(String, u32)> = queues
        .iter()
        .filter(|(name, p)| !name.trim().is_empty() && *p > 0)
        .map(|(name, p)| (name.clone(), p.unsigned_abs()))
        .collect();
    if qs.is_empty() {
        qs.push((DEFAULT_QUEUE.to_string(), 1));
    }
    let g = qs.iter().fold(0, |acc, (_, p)| gcd(acc, *p)).max(1);
    for (_, p) in qs.iter_mut() {
        *p /= g;
    }
    qs.sort_by_key(|q| std::cmp::Reverse(q.1));
    qs
}

impl QueueSelector {
    /// A selector for `queues`, [`normalized`].
    pub fn new(queues: &[(String, i32)], strict: bool) -> Self {
        let qs = normalized(queues);
        let expanded =
            qs.iter().enumerate().flat_map(|(i, (_, p))| std::iter::repeat_n(i, *p as usize)).collect();
        Self { queues: qs, strict, expanded }
    }

    /// Queue names with their normalised priorities.
    pub fn queues(&self) -> &[(String, u32)] {
        &self.queues
    }

    /// Queue names.
    pub fn names(&self) -> Vec<&str> {
        self.queues.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The order to try queues in for one dequeue.
    pub fn order(&self) -> Vec<&str> {
        if self.strict || self.queues.len() == 1 {
            return self.names();
        }
        let mut list = self.expanded.clone();
        fastrand::shuffle(&mut list);
        let mut seen = vec![false; self.queues.len()];
        let mut out = Vec::with_capacity(self.queues.len());
        for i in list {
            if !seen[i] {
                seen[i] = true;
                out.push(self.queues[i].0.as_str());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qs(items: &[(&str, i32)]) -> Vec<(String, i32)> {
        items.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn normalises_like_asynq() {
        type Case<'a> = (&'a [(&'a str, i32)], &'a [(&'a str, u32)]);
        let cases: [Case<'_>; 4] = [
            (&[("critical", 6), ("default", 3), ("low", 1)], &[("critical", 6), ("default", 3), ("low", 1)]),
            (&[("a", 4), ("b", 2)], &[("a", 2), ("b", 1)]),
            (&[("a", 0), (" ", 3), ("b", -1)], &[("default", 1)]),
            (&[], &[("default", 1)]),
        ];
        for (input, want) in cases {
            let s = QueueSelector::new(&qs(input), false);
            let got: Vec<(&str, u32)> = s.queues().iter().map(|(n, p)| (n.as_str(), *p)).collect();
            assert_eq!(got, want.to_vec(), "input {input:?}");
        }
    }

    #[test]
    fn strict_order_is_fixed() {
        let s = QueueSelector::new(&qs(&[("low", 1), ("critical", 6), ("default", 3)]), true);
        for _ in 0..10 {
            assert_eq!(s.order(), vec!["critical", "default", "low"]);
        }
    }

    #[test]
    fn weighted_order_follows_priorities() {
        let s = QueueSelector::new(&qs(&[("critical", 6), ("default", 3), ("low", 1)]), false);
        let mut first = std::collections::HashMap::new();
        let n = 20_000;
        for _ in 0..n {
            let o = s.order();
            assert_eq!(o.len(), 3);
            *first.entry(o[0]).or_insert(0) += 1;
        }
        let share = |q: &str| f64::from(first[q]) / f64::from(n);
        assert!((share("critical") - 0.6).abs() < 0.03, "{first:?}");
        assert!((share("default") - 0.3).abs() < 0.03, "{first:?}");
        assert!((share("low") - 0.1).abs() < 0.02, "{first:?}");
    }
}
