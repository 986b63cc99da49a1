//! A Wing–Gong / Lowe linearizability checker (the algorithm of Knossos' `wgl` and of
//! Porcupine): depth-first search over the order in which pending operations take effect,
//! with memoization of (set of linearized operations, model state) so that each
//! configuration is explored once.
//!
//! An operation that never returned (`info`) has its return at infinity: it may take effect
//! at any point after its invocation (including after everything else, which is the same as
//! never for a write nobody read).

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model: Clone + Eq + Hash {
    /// An operation with its observed output (for reads: the value returned).
    type Op;
    /// The state after `op`, or `None` if `op`'s output is impossible in this state.
    fn step(&self, op: &Self::Op) -> Option<Self>;
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<O> {
    /// The operation and its output.
    pub op: O,
    /// Invocation time.
    pub call: u64,
    /// Completion time; `None` if it never completed (indeterminate).
    pub ret: Option<u64>,
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<S> {
    /// Some order of the operations respects real time and the specification.
    Linearizable,
    /// None does.
    NotLinearizable(Counterexample<S>),
    /// The search gave up after this many steps.
    Unknown(u64),
}

/// Where the deepest attempt got stuck.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterexample<S> {
    /// The longest sequence of operations (indices into the history) that could be
    /// linearized, in order.
    pub linearized: Vec<usize>,
    /// The state after them.
    pub state: S,
    /// The operation whose completion came before it could be placed: given `linearized`,
    /// no pending operation can take effect next in a way that lets this one take effect.
    pub stuck: usize,
}

/// Checks `history` against `init`, exploring at most `budget` search steps.
pub fn check<M: Model>(init: M, history: &[Entry<M::Op>], budget: u64) -> Verdict<M> {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events: (time, is_return, op). Calls sort before returns at equal times, so ops that
    // touch at one instant count as concurrent (the permissive reading).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        events.push((e.call, false, i));
        events.push((e.ret.unwrap_or(u64::MAX), true, i));
    }
    events.sort();
    // A doubly linked list over the events: node 0 is the head, node 2n+1 the tail.
    let head = 0;
    let tail = 2 * n + 1;
    let mut next: Vec<usize> = (1..=2 * n + 1).chain([tail]).collect();
    let mut prev: Vec<usize> = [head].into_iter().chain(0..=2 * n).collect();
    let mut is_return = vec![false; 2 * n + 2];
    let mut op_of = vec![0usize; 2 * n + 2];
    let mut return_node = vec![0usize; n];
    for (k, &(_, ret, op)) in events.iter().enumerate() {
        let node = k + 1;
        is_return[node] = ret;
        op_of[node] = op;
        if ret {
            return_node[op] = node;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        let (p, q) = (prev[x], next[x]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        let (p, q) = (prev[x], next[x]);
        next[p] = x;
        prev[q] = x;
    };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M)> = HashSet::new();
    let mut stack: Vec<(usize, M)> = Vec::new();
    let mut state = init;
    let mut best: Option<Counterexample<M>> = None;
    let mut steps = 0u64;
    let mut node = next[head];
    while next[head] != tail {
        steps += 1;
        if steps > budget {
            return Verdict::Unknown(budget);
        }
        if !is_return[node] {
            let op = op_of[node];
            if let Some(after) = state.step(&history[op].op) {
                let mut with = linearized.clone();
                with[op / 64] |= 1 << (op % 64);
                if cache.insert((with.clone(), after.clone())) {
                    stack.push((node, std::mem::replace(&mut state, after)));
                    linearized = with;
                    unlink(&mut next, &mut prev, node);
                    unlink(&mut next, &mut prev, return_node[op]);
                    node = next[head];
                    continue;
                }
            }
            node = next[node];
        } else {
            // The earliest pending return: its operation must have taken effect by now and
            // none of the orders tried lets it. Backtrack.
            if best
                .as_ref()
                .is_none_or(|b| stack.len() > b.linearized.len())
            {
                best = Some(Counterexample {
                    linearized: stack.iter().map(|(nd, _)| op_of[*nd]).collect(),
                    state: state.clone(),
                    stuck: op_of[node],
                });
            }
            let Some((call_node, before)) = stack.pop() else {
                return Verdict::NotLinearizable(best.unwrap_or(Counterexample {
                    linearized: Vec::new(),
                    state,
                    stuck: op_of[node],
                }));
            };
            let op = op_of[call_node];
            linearized[op / 64] &= !(1 << (op % 64));
            state = before;
            // Relink in the reverse order of unlinking.
            relink(&mut next, &mut prev, return_node[op]);
            relink(&mut next, &mut prev, call_node);
            node = next[call_node];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of small integers for tests: writes and reads.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Reg(u8);

    #[derive(Debug, Clone, PartialEq)]
    enum Op {
        W(u8),
        R(u8),
    }

    impl Model for Reg {
        type Op = Op;
        fn step(&self, op: &Op) -> Option<Reg> {
            match op {
                Op::W(v) => Some(Reg(*v)),
                Op::R(v) => (*v == self.0).then(|| self.clone()),
            }
        }
    }

    fn e(op: Op, call: u64, ret: u64) -> Entry<Op> {
        Entry {
            op,
            call,
            ret: Some(ret),
        }
    }

    /// Brute force: some permutation respecting real time is a legal sequential run.
    fn brute(history: &[Entry<Op>]) -> bool {
        fn go(h: &[Entry<Op>], used: &mut Vec<bool>, state: Reg) -> bool {
            if used.iter().all(|u| *u) {
                return true;
            }
            for i in 0..h.len() {
                if used[i] {
                    continue;
                }
                // i may go next only if no unused op returned before i was called.
                let blocked = (0..h.len())
                    .any(|j| j != i && !used[j] && h[j].ret.is_some_and(|r| r < h[i].call));
                if blocked {
                    continue;
                }
                if let Some(s) = state.step(&h[i].op) {
                    used[i] = true;
                    if go(h, used, s) {
                        return true;
                    }
                    used[i] = false;
                }
            }
            false
        }
        go(history, &mut vec![false; history.len()], Reg(0))
    }

    fn wgl(history: &[Entry<Op>]) -> bool {
        match check(Reg(0), history, 10_000_000) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable(_) => false,
            Verdict::Unknown(_) => panic!("budget exhausted"),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(wgl(&[e(Op::W(1), 0, 1), e(Op::R(1), 2, 3)]));
        assert!(!wgl(&[e(Op::W(1), 0, 1), e(Op::R(0), 2, 3)]));
        assert!(wgl(&[e(Op::R(0), 0, 1)]));
        assert!(!wgl(&[e(Op::R(7), 0, 1)]));
        assert!(wgl(&[]));
    }

    #[test]
    fn concurrency_allows_either_order() {
        // A read overlapping a write may see the old or the new value.
        assert!(wgl(&[e(Op::W(1), 0, 10), e(Op::R(0), 5, 6)]));
        assert!(wgl(&[e(Op::W(1), 0, 10), e(Op::R(1), 5, 6)]));
        // Touching at one instant counts as concurrent.
        assert!(wgl(&[e(Op::W(1), 0, 5), e(Op::R(0), 5, 6)]));
    }

    #[test]
    fn stale_read_after_a_completed_overwrite_is_caught() {
        let h = [e(Op::W(1), 0, 10), e(Op::W(2), 20, 30), e(Op::R(1), 40, 50)];
        match check(Reg(0), &h, 1000) {
            Verdict::NotLinearizable(c) => {
                assert_eq!(c.stuck, 2, "{c:?}");
                assert_eq!(c.linearized, vec![0, 1]);
                assert_eq!(c.state, Reg(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_must_agree_on_the_order_of_concurrent_writes() {
        // W1 and W2 overlap; one reader sees 1 then 2, another (later) sees 2 then 1.
        let h = [
            e(Op::W(1), 0, 100),
            e(Op::W(2), 0, 100),
            e(Op::R(1), 110, 120),
            e(Op::R(2), 130, 140),
        ];
        assert!(!wgl(&h));
        // After both writes completed, two concurrent reads still cannot disagree...
        let h = [
            e(Op::W(1), 0, 100),
            e(Op::W(2), 0, 100),
            e(Op::R(2), 110, 140),
            e(Op::R(1), 110, 140),
        ];
        assert!(!wgl(&h));
        // ...but while the writes are in flight, readers may see them in either order.
        let h = [
            e(Op::W(1), 0, 100),
            e(Op::W(2), 0, 100),
            e(Op::R(2), 10, 50),
            e(Op::R(1), 60, 90),
        ];
        assert!(wgl(&h));
    }

    #[test]
    fn indeterminate_operations_may_take_effect_late_or_never() {
        let info = |op, call| Entry {
            op,
            call,
            ret: None,
        };
        // An unacknowledged write may show up long after it was invoked...
        assert!(wgl(&[
            info(Op::W(1), 0),
            e(Op::R(0), 10, 20),
            e(Op::R(1), 100, 110)
        ]));
        // ...or never.
        assert!(wgl(&[info(Op::W(1), 0), e(Op::R(0), 100, 110)]));
        // But it cannot take effect before it was invoked.
        assert!(!wgl(&[e(Op::R(1), 0, 10), info(Op::W(1), 20)]));
        // And once seen, it cannot be unseen without another write.
        assert!(!wgl(&[
            info(Op::W(1), 0),
            e(Op::R(1), 10, 20),
            e(Op::R(0), 30, 40)
        ]));
    }

    /// A deterministic xorshift, so the random tests are reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random small histories: the checker agrees with brute force on every one of them,
    /// and both verdicts occur.
    #[test]
    fn agrees_with_brute_force_on_random_small_histories() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..3000 {
            let len = 1 + rng.below(7) as usize;
            let mut h = Vec::new();
            for _ in 0..len {
                let call = rng.below(40);
                let ret = call + 1 + rng.below(15);
                let v = rng.below(3) as u8;
                let op = if rng.below(2) == 0 {
                    Op::W(v)
                } else {
                    Op::R(v)
                };
                let ret = if matches!(op, Op::W(_)) && rng.below(6) == 0 {
                    None
                } else {
                    Some(ret)
                };
                h.push(Entry { op, call, ret });
            }
            let expected = brute(&h);
            assert_eq!(wgl(&h), expected, "{h:?}");
            if expected {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(
            valid > 300 && invalid > 300,
            "{valid} valid, {invalid} invalid"
        );
    }

    /// Long histories generated from a real register (each op takes effect at a random
    /// instant inside its interval) are linearizable; planting one stale read in a
    /// non-overlapping stretch makes them not.
    #[test]
    fn long_generated_histories_and_planted_stale_reads() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..20 {
            // (effect time, op index)
            let mut h: Vec<Entry<Op>> = Vec::new();
            let mut effects: Vec<(u64, usize)> = Vec::new();
            for i in 0..300 {
                let call = rng.below(10_000);
                let effect = call + rng.below(50);
                let ret = effect + rng.below(50);
                let op = if rng.below(2) == 0 {
                    Op::W(1 + rng.below(200) as u8)
                } else {
                    Op::R(0)
                };
                h.push(e(op, call, ret));
                effects.push((effect, i));
            }
            effects.sort();
            let mut value = 0u8;
            for &(_, i) in &effects {
                match &mut h[i].op {
                    Op::W(v) => value = *v,
                    Op::R(r) => *r = value,
                }
            }
            assert!(
                wgl(&h),
                "round {round}: a generated history must be linearizable"
            );
        }
        // A stale read planted after a quiet stretch: W(5) completes, then W(6) completes,
        // then a read returns 5.
        let mut h = vec![e(Op::W(5), 0, 10), e(Op::W(6), 20, 30), e(Op::R(6), 35, 38)];
        for i in 0..50u64 {
            h.push(e(Op::W(7 + (i % 100) as u8), 100 + i * 20, 110 + i * 20));
            h.push(e(Op::R(7 + (i % 100) as u8), 112 + i * 20, 115 + i * 20));
        }
        assert!(wgl(&h));
        h.push(e(Op::R(5), 2000, 2010));
        assert!(!wgl(&h));
    }

    #[test]
    fn a_budget_makes_hard_searches_unknown() {
        let h: Vec<Entry<Op>> = (0..20)
            .map(|i| Entry {
                op: Op::W(i),
                call: 0,
                ret: None,
            })
            .chain([e(Op::R(200), 0, 1)])
            .collect();
        assert!(matches!(check(Reg(0), &h, 50), Verdict::Unknown(50)));
    }
}
