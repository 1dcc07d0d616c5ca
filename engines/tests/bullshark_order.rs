//! Bullshark ordering on hand-built DAGs (n = 4, f = 1): commit with exactly f + 1 support, no
//! commit with f (and the planted `SupportF` bug that does commit), a dead leader skipped, a
//! weakly supported leader ordered later through the next committed leader, missing rounds and
//! parents, weak links, garbage collection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dwcp_engines::bullshark::dag::{Dag, InsertError};
use dwcp_engines::bullshark::order::{CommittedLeader, Orderer};
use dwcp_engines::bullshark::{BullsharkConfig, Certificate, Header, PlantedBug};
use dwcp_engines::sim::crypto::Digest32;

/// Builds certificates (unsigned: the orderer never looks at signatures) by (round, author).
struct B {
    certs: BTreeMap<(u64, u32), Arc<Certificate>>,
}

impl B {
    fn new() -> Self {
        Self {
            certs: BTreeMap::new(),
        }
    }
    fn d(&self, r: u64, a: u32) -> Digest32 {
        self.certs[&(r, a)].digest
    }
    /// Certificate of `a` at `r` with strong parents `ps` (authors of `r - 1`) and weak links.
    fn cert(&mut self, r: u64, a: u32, ps: &[u32], weak: &[(u64, u32)]) -> Arc<Certificate> {
        let parents = ps.iter().map(|p| self.d(r - 1, *p)).collect();
        let weak = weak
            .iter()
            .map(|(wr, wa)| (*wr, self.d(*wr, *wa)))
            .collect();
        let h = Header {
            author: a,
            round: r,
            batches: Vec::new(),
            parents,
            weak,
            sig: [0; 64],
        };
        let c = Arc::new(Certificate::new(h, Vec::new()));
        self.certs.insert((r, a), Arc::clone(&c));
        c
    }
    /// Round `r` by `authors`, each referencing all of `ps`.
    fn round(&mut self, r: u64, authors: &[u32], ps: &[u32]) -> Vec<Arc<Certificate>> {
        authors.iter().map(|a| self.cert(r, *a, ps, &[])).collect()
    }
}

fn cfg() -> BullsharkConfig {
    BullsharkConfig::new(4, 1)
}

/// Insert in order, running the commit rule after each insertion.
fn feed(dag: &mut Dag, o: &mut Orderer, certs: &[Arc<Certificate>]) -> Vec<CommittedLeader> {
    let mut out = Vec::new();
    for c in certs {
        dag.insert(Arc::clone(c)).unwrap();
        out.extend(o.try_order(dag, c.round()));
    }
    out
}

fn slots(ls: &[CommittedLeader]) -> Vec<Vec<(u64, u32)>> {
    ls.iter()
        .map(|l| l.certs.iter().map(|c| (c.round(), c.author())).collect())
        .collect()
}

const ALL: [u32; 4] = [0, 1, 2, 3];

#[test]
fn leader_commits_with_exactly_f_plus_one_support() {
    let mut b = B::new();
    let r0 = b.round(0, &ALL, &[]);
    let (mut dag, mut o) = (Dag::new(), Orderer::new(&cfg()));
    assert!(feed(&mut dag, &mut o, &r0).is_empty());
    // Round 1: two certificates support the leader of round 0 (node 0), two do not.
    let s1 = b.cert(1, 1, &[0, 1, 2], &[]);
    let n2 = b.cert(1, 2, &[1, 2, 3], &[]);
    let n3 = b.cert(1, 3, &[1, 2, 3], &[]);
    let s0 = b.cert(1, 0, &[0, 2, 3], &[]);
    assert!(
        feed(&mut dag, &mut o, &[s1, n2, n3]).is_empty(),
        "f support"
    );
    let done = feed(&mut dag, &mut o, &[s0]);
    assert_eq!(
        slots(&done),
        vec![vec![(0, 0)]],
        "the 2nd supporter commits"
    );
    assert_eq!(o.leaders, vec![(0, 0)]);
    assert_eq!(o.last_committed_round(), Some(0));
}

#[test]
fn leader_with_f_support_is_not_committed_but_the_planted_bug_commits_it() {
    let build = || {
        let mut b = B::new();
        let mut v = b.round(0, &ALL, &[]);
        v.push(b.cert(1, 1, &[0, 1, 2], &[]));
        v.extend(b.round(1, &[0, 2, 3], &[1, 2, 3]));
        v
    };
    let (mut dag, mut o) = (Dag::new(), Orderer::new(&cfg()));
    assert!(feed(&mut dag, &mut o, &build()).is_empty());
    assert_eq!(o.last_committed_round(), None);
    let (mut dag, mut o) = (
        Dag::new(),
        Orderer::new(&cfg().with_bug(PlantedBug::SupportF)),
    );
    assert_eq!(slots(&feed(&mut dag, &mut o, &build())), vec![vec![(0, 0)]]);
}

#[test]
fn dead_leader_is_skipped() {
    // Node 1 (leader of round 2) is dead from round 2 on; the leader of round 4 (node 2)
    // commits and orders everything it reaches, with no leader for round 2.
    let mut b = B::new();
    let mut v = b.round(0, &ALL, &[]);
    v.extend(b.round(1, &ALL, &ALL));
    let live = [0, 2, 3];
    v.extend(b.round(2, &live, &ALL));
    v.extend(b.round(3, &live, &live));
    v.extend(b.round(4, &live, &live));
    v.extend(b.round(5, &live, &live));
    let (mut dag, mut o) = (Dag::new(), Orderer::new(&cfg()));
    let done = feed(&mut dag, &mut o, &v);
    assert_eq!(o.leaders, vec![(0, 0), (4, 2)]);
    let s = slots(&done);
    assert_eq!(s[0], vec![(0, 0)]);
    let mut expect = vec![(0, 1), (0, 2), (0, 3)];
    expect.extend(ALL.iter().map(|a| (1, *a)));
    for r in 2..=3 {
        expect.extend(live.iter().map(|a| (r, *a)));
    }
    expect.push((4, 2));
    assert_eq!(
        s[1], expect,
        "causal history by (round, author), leader last"
    );
}

#[test]
fn weakly_supported_leader_is_ordered_first_through_the_next_leader() {
    // The leader of round 2 (node 1) gets a single supporter in round 3 (node 0), so it does
    // not commit; the leader of round 4 (node 2) reaches it through node 0's round-3 vertex.
    let mut b = B::new();
    let mut v = b.round(0, &ALL, &[]);
    v.extend(b.round(1, &ALL, &ALL));
    v.extend(b.round(2, &ALL, &ALL));
    v.push(b.cert(3, 0, &[0, 1, 2], &[]));
    v.extend(b.round(3, &[1, 2, 3], &[0, 2, 3]));
    let (mut dag, mut o) = (Dag::new(), Orderer::new(&cfg()));
    feed(&mut dag, &mut o, &v);
    assert_eq!(
        o.leaders,
        vec![(0, 0)],
        "round 2 not committed with f support"
    );
    v.clear();
    v.extend(b.round(4, &ALL, &[0, 1, 2]));
    v.extend(b.round(5, &ALL, &ALL));
    let done = feed(&mut dag, &mut o, &v);
    assert_eq!(o.leaders, vec![(0, 0), (2, 1), (4, 2)]);
    let s = slots(&done);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].last(), Some(&(2, 1)), "linked leader ordered first");
    assert_eq!(s[1].last(), Some(&(4, 2)));
    assert!(!s[1].contains(&(2, 1)), "nothing ordered twice");

    // Planted bug: without the walk back, the round-2 leader is not committed as a leader.
    let (mut dag, mut o) = (
        Dag::new(),
        Orderer::new(&cfg().with_bug(PlantedBug::NoLinkedLeaders)),
    );
    let sorted: Vec<_> = b.certs.values().cloned().collect(); // keyed by (round, author)
    feed(&mut dag, &mut o, &sorted);
    assert_eq!(o.leaders, vec![(0, 0), (4, 2)]);
}

#[test]
fn missing_parents_are_refused_and_missing_leader_rounds_are_skipped() {
    let mut b = B::new();
    let r0 = b.round(0, &ALL, &[]);
    let r1 = b.round(1, &ALL, &ALL);
    let mut dag = Dag::new();
    for c in &r0[..3] {
        dag.insert(Arc::clone(c)).unwrap();
    }
    // Round 1 references node 3's round-0 vertex, which is missing: refused, named.
    match dag.insert(Arc::clone(&r1[0])) {
        Err(InsertError::Missing(m)) => assert_eq!(m, vec![b.d(0, 3)]),
        other => panic!("{other:?}"),
    }
    // No leader vertex for rounds 2 and 4 (nodes 1 and 2 missing those rounds); round 6's
    // leader (node 3) commits and orders round 0's leader first (reachable).
    let mut v = vec![Arc::clone(&r0[3])];
    v.extend(r1);
    v.extend(b.round(2, &[0, 2, 3], &ALL));
    v.extend(b.round(3, &[0, 1, 3], &[0, 2, 3]));
    v.extend(b.round(4, &[0, 1, 3], &[0, 1, 3]));
    v.extend(b.round(5, &ALL, &[0, 1, 3]));
    v.extend(b.round(6, &ALL, &ALL));
    v.extend(b.round(7, &[0, 1, 2], &ALL));
    let mut o = Orderer::new(&cfg());
    let mut done = Vec::new();
    for c in &r0[..3] {
        done.extend(o.try_order(&dag, c.round()));
    }
    done.extend(feed(&mut dag, &mut o, &v));
    assert_eq!(o.leaders, vec![(0, 0), (6, 3)]);
    let total: usize = done.iter().map(|l| l.certs.len()).sum();
    assert_eq!(
        total,
        4 + 4 + 3 + 3 + 3 + 4 + 1,
        "every vertex up to round 6's leader, once"
    );
}

#[test]
fn weak_links_order_a_late_vertex_and_garbage_collection_drops_it() {
    // Node 3's round-1 vertex is referenced by nobody (late); node 0 links it weakly at round 5.
    let run = |gc_depth: u64| {
        let mut b = B::new();
        let mut v = b.round(0, &ALL, &[]);
        v.extend(b.round(1, &ALL, &ALL));
        let three = [0, 1, 2];
        for r in 2..=4 {
            let ps: &[u32] = if r == 2 { &three } else { &ALL };
            v.extend(b.round(r, &ALL, ps));
        }
        v.push(b.cert(5, 0, &ALL, &[(1, 3)]));
        v.extend(b.round(5, &[1, 2, 3], &ALL));
        for r in 6..=9 {
            v.extend(b.round(r, &ALL, &ALL));
        }
        let mut c = cfg();
        c.gc_depth = gc_depth;
        let (mut dag, mut o) = (Dag::new(), Orderer::new(&c));
        let mut ordered = Vec::new();
        for x in &v {
            dag.insert(Arc::clone(x)).unwrap();
            for l in o.try_order(&dag, x.round()) {
                ordered.extend(l.certs.iter().map(|c| (c.round(), c.author())));
            }
            dag.gc(o.horizon());
        }
        (ordered, dag, o)
    };
    let (ordered, _, _) = run(50);
    assert!(
        ordered.contains(&(1, 3)),
        "weak link orders the late vertex"
    );
    let (ordered, dag, o) = run(2);
    assert!(
        !ordered.contains(&(1, 3)),
        "below the horizon when its link commits"
    );
    assert_eq!(o.horizon(), 6, "last committed round 8 − gc depth 2");
    assert_eq!(dag.gc_round(), 6);
    assert!(dag.at(5, 0).is_none() && dag.at(6, 0).is_some());
    let late = B::new().round(0, &[1], &[]).remove(0);
    let mut dag = dag;
    assert_eq!(dag.insert(late), Err(InsertError::Collected));
}

/// The planted `SupportF` bug is unsafe: one validator sees the round-2 leader's lone supporter
/// early and commits it; another sees it last, commits the round-4 leader first (which does not
/// reach the round-2 leader) and orders something else at the same position. With the real rule
/// (f + 1) both validators produce the same sequence.
#[test]
fn support_f_diverges_on_two_delivery_orders_and_f_plus_one_does_not() {
    let mut b = B::new();
    let mut v = b.round(0, &ALL, &[]);
    v.extend(b.round(1, &ALL, &ALL));
    v.extend(b.round(2, &ALL, &ALL));
    let lone = b.cert(3, 0, &[0, 1, 2], &[]);
    let others = b.round(3, &[1, 2, 3], &[0, 2, 3]);
    let mut rest = b.round(4, &ALL, &[1, 2, 3]);
    rest.extend(b.round(5, &ALL, &ALL));
    let early: Vec<_> = v
        .iter()
        .chain([&lone])
        .chain(&others)
        .chain(&rest)
        .cloned()
        .collect();
    let late: Vec<_> = v
        .iter()
        .chain(&others)
        .chain(&rest)
        .chain([&lone])
        .cloned()
        .collect();
    let seq = |c: BullsharkConfig, order: &[Arc<Certificate>]| {
        let (mut dag, mut o) = (Dag::new(), Orderer::new(&c));
        slots(&feed(&mut dag, &mut o, order)).concat()
    };
    assert_eq!(seq(cfg(), &early), seq(cfg(), &late));
    let bug = cfg().with_bug(PlantedBug::SupportF);
    assert_ne!(
        seq(bug, &early),
        seq(bug, &late),
        "f support must be unsafe"
    );
}
