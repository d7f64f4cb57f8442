//! Unit tests of the rendezvous ranking and of placement.

use super::*;

fn peer(id: &str, load: u32) -> Peer {
    Peer {
        node_id: id.into(),
        address: format!("127.0.0.1:{}", 9000 + id.len()),
        warm: 0,
        load,
    }
}

fn pool(function: &str) -> PoolKey {
    PoolKey {
        account: "123456789012".into(),
        function_name: function.into(),
        version: "$LATEST".into(),
        generation: 1,
    }
}

fn nodes(ids: &[&str]) -> Vec<Peer> {
    ids.iter().map(|id| peer(id, 0)).collect()
}

fn home(key: &str, living: &[Peer]) -> String {
    ranked(key, living)[0].node_id.clone()
}

#[test]
fn the_score_is_sha256_of_node_nul_key() {
    // The same formula the e2e tests use to know a function's home in advance.
    let d = Sha256::digest(b"node-a\0k");
    let want = u64::from_be_bytes(d[..8].try_into().unwrap());
    assert_eq!(score("node-a", "k"), want);
    assert_ne!(score("node-a", "k"), score("node-b", "k"));
}

#[test]
fn the_ranking_is_stable_and_does_not_depend_on_the_order_of_the_nodes() {
    let a = nodes(&["n1", "n2", "n3", "n4"]);
    let mut b = a.clone();
    b.reverse();
    for i in 0..200 {
        let key = format!("acct\0f{i}\0$LATEST");
        let ra: Vec<_> = ranked(&key, &a).iter().map(|p| &p.node_id).collect();
        let rb: Vec<_> = ranked(&key, &b).iter().map(|p| &p.node_id).collect();
        assert_eq!(ra, rb);
        assert_eq!(ra.len(), 4);
        assert_eq!(home(&key, &a), home(&key, &a), "the same every time");
    }
}

#[test]
fn keys_spread_over_the_nodes() {
    let living = nodes(&["n1", "n2", "n3"]);
    let mut counts = std::collections::HashMap::new();
    for i in 0..3000 {
        *counts.entry(home(&format!("k{i}"), &living)).or_insert(0) += 1;
    }
    for id in ["n1", "n2", "n3"] {
        let n = counts.get(id).copied().unwrap_or(0);
        assert!((800..=1200).contains(&n), "{id} is home of {n} of 3000");
    }
}

#[test]
fn when_a_node_leaves_only_its_keys_move_and_they_move_to_their_second_choice() {
    let all = nodes(&["n1", "n2", "n3", "n4"]);
    let without: Vec<Peer> = all.iter().filter(|p| p.node_id != "n3").cloned().collect();
    let mut moved = 0;
    for i in 0..2000 {
        let key = format!("k{i}");
        let before = ranked(&key, &all);
        let after = home(&key, &without);
        if before[0].node_id == "n3" {
            moved += 1;
            assert_eq!(after, before[1].node_id, "to the second choice");
        } else {
            assert_eq!(after, before[0].node_id, "a key of a living node stays");
        }
    }
    assert!((300..=700).contains(&moved), "{moved} of 2000 moved");
    // And back: a node that joins takes only keys it now ranks first for.
    for i in 0..2000 {
        let key = format!("k{i}");
        let with = home(&key, &all);
        if with != "n3" {
            assert_eq!(with, home(&key, &without));
        }
    }
}

#[test]
fn placement_runs_here_alone_or_with_an_idle_sandbox_or_at_home() {
    let one = Membership::new(peer("me", 0));
    assert_eq!(
        placement(&pool("f"), &one, false, |_| false),
        Placement::Here
    );

    let m = Membership::new(peer("me", 0));
    m.set_living(nodes(&["a", "b", "me"]));
    // Find one function whose home is elsewhere and one whose home is here.
    let living = m.living();
    let away = (0..100)
        .map(|i| format!("f{i}"))
        .find(|f| home(&home_key(&pool(f)), &living) != "me")
        .expect("a function homed elsewhere");
    let here = (0..100)
        .map(|i| format!("f{i}"))
        .find(|f| home(&home_key(&pool(f)), &living) == "me")
        .expect("a function homed here");
    assert_eq!(
        placement(&pool(&here), &m, false, |_| false),
        Placement::Here
    );
    assert_eq!(
        placement(&pool(&away), &m, true, |_| false),
        Placement::Here
    );

    let Placement::Forward(to) = placement(&pool(&away), &m, false, |_| false) else {
        panic!("homed elsewhere: forwarded");
    };
    let order: Vec<_> = ranked(&home_key(&pool(&away)), &living)
        .into_iter()
        .map(|p| p.node_id.clone())
        .collect();
    assert_eq!(to[0].node_id, order[0]);
    assert!(to.iter().all(|p| p.node_id != "me"), "never to itself");
    // The nodes after the home, in rank order, are the fallbacks.
    let rest: Vec<_> = order[1..].iter().filter(|id| *id != "me").collect();
    let got: Vec<_> = to[1..].iter().map(|p| &p.node_id).collect();
    assert_eq!(got, rest);
}

#[test]
fn a_saturated_home_spills_to_the_next_and_all_saturated_runs_here() {
    let m = Membership::new(peer("me", 0));
    m.set_living(nodes(&["a", "b", "me"]));
    let living = m.living();
    let f = (0..200)
        .map(|i| format!("f{i}"))
        .find(|f| {
            let r = ranked(&home_key(&pool(f)), &living);
            r[0].node_id != "me" && r[1].node_id != "me"
        })
        .expect("a function whose two first homes are elsewhere");
    let r: Vec<_> = ranked(&home_key(&pool(&f)), &living)
        .into_iter()
        .map(|p| p.node_id.clone())
        .collect();
    let home = r[0].clone();
    let Placement::Forward(to) = placement(&pool(&f), &m, false, |p| p.node_id == home) else {
        panic!("spilled to the second home");
    };
    assert_eq!(to.len(), 1);
    assert_eq!(to[0].node_id, r[1]);
    assert_eq!(
        placement(&pool(&f), &m, false, |_| true),
        Placement::Here,
        "every other node saturated"
    );
}
