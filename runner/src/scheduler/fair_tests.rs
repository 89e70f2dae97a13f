//! The usage ledger and the fair-share formula, directly.

use super::fair::*;

fn owner(account: u32, user: u32) -> Owner {
    Owner { account, user }
}

fn factor(f: &Fair, o: Owner) -> f64 {
    f.priority(&JobFacts { owner: o, eligible: 0, nice: 0 }, 1, 1, 0).fairshare
}

#[test]
fn usage_is_billed_cpu_time_and_gpus_by_their_weight_and_decays_by_half_lives() {
    let weights = Weights { gpu_billing: 4.0, decay_half_life: 10_000, ..Weights::fair_share() };
    let mut f = Fair::new(weights, Limits::default());
    let a = owner(0, 1);
    f.start(1, a, 2, 1, 0);
    f.refresh(1000);
    // (2 CPUs + 1 GPU × 4) for one second, in CPU-seconds; the first refresh decays nothing.
    let usage = |f: &Fair| f.shares().iter().find(|r| r.user == Some(1)).map(|r| r.raw_usage).unwrap();
    let first = usage(&f);
    assert_eq!(first, 6.0);
    f.release(1, 2, 1, 1000);
    f.refresh(11_000);
    assert!((usage(&f) - first / 2.0).abs() < 1e-9, "one half-life halves it");
    assert_eq!(f.running_of(1), Running::default());
}

#[test]
fn fair_share_is_slurms_fair_tree_over_accounts_and_their_users() {
    let mut f = Fair::new(Weights::fair_share(), Limits::default());
    let (alice, bob, carol) = (owner(0, 1), owner(0, 2), owner(1, 3));
    for o in [alice, bob] {
        f.know(o);
    }
    assert_eq!(factor(&f, alice), 1.0, "no usage yet: every user ties first");
    assert_eq!(factor(&f, bob), 1.0);
    // So do users of accounts that tie: a new account's user is not ranked by account number.
    let mut two = Fair::new(Weights::fair_share(), Limits::default());
    two.know(owner(0, 1));
    two.know(owner(1, 2));
    assert_eq!((factor(&two, owner(0, 1)), factor(&two, owner(1, 2))), (1.0, 1.0));
    f.start(1, alice, 1, 0, 0);
    f.refresh(1000);
    // One account, two users: alice used all of it, bob nothing: bob ranks first.
    assert_eq!((factor(&f, bob), factor(&f, alice)), (1.0, 0.5));
    // A second account whose one user used nothing ranks ahead of the whole first account.
    f.know(carol);
    let third = |x: f64| (x * 3.0).round();
    assert_eq!((third(factor(&f, carol)), third(factor(&f, bob)), third(factor(&f, alice))), (3.0, 2.0, 1.0));
    // Many users in one account still spread over the whole range (the classic formula gave
    // them all nearly nothing).
    let mut many = Fair::new(Weights::fair_share(), Limits::default());
    for u in 0..200 {
        many.start(u64::from(u), owner(0, u), 1 + u % 7, 0, 0);
    }
    many.refresh(1000);
    let factors: Vec<f64> = (0..200).map(|u| factor(&many, owner(0, u))).collect();
    let (lo, hi) = factors.iter().fold((1.0f64, 0.0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    assert_eq!(hi, 1.0);
    assert!(lo < 0.2, "{lo}");
    // Shares weigh in: account 0 with 3 shares to 1 ranks ahead of account 1 once both used
    // the same.
    f.start(2, carol, 1, 0, 1000);
    f.refresh(2000);
    assert!(factor(&f, carol) > factor(&f, bob), "equal shares: carol used less than account 0");
    f.weights.account_shares.insert(0, 3);
    f.refresh(2000);
    assert!(factor(&f, bob) > factor(&f, carol), "3 shares to 1: account 0 is under its share");
}

#[test]
fn limits_count_a_gang_once_and_give_back_on_each_node() {
    let limits = Limits { per_user: Caps { jobs: Some(1), cpus: Some(8), gpus: None }, ..Limits::default() };
    let mut f = Fair::new(Weights::none(), limits);
    let a = owner(0, 1);
    f.start(7, a, 4, 0, 0);
    f.start(7, a, 4, 0, 0);
    assert_eq!(f.running_of(1), Running { jobs: 1, cpus: 8, gpus: 0 });
    assert_eq!(f.allows(a, 1, 0), Err(LimitReason::JobsPerUser));
    assert_eq!(f.allows(owner(0, 2), 8, 0), Ok(()));
    assert!(f.release(7, 4, 0, 10));
    assert_eq!(f.running_of(1), Running { jobs: 1, cpus: 4, gpus: 0 });
    f.release(7, 4, 0, 10);
    assert_eq!(f.allows(a, 8, 0), Ok(()));
    assert_eq!(f.allows(a, 9, 0), Err(LimitReason::CpusPerUser));
}
