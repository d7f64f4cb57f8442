//! Unit tests of the listener's bounds: the per-address cap, the timeouts, the choice of
//! whom to close at the cap, and the logging throttle.

use super::*;

#[test]
fn the_per_address_cap_counts_and_gives_back() {
    let map = PerIp::default();
    let ip: IpAddr = [127, 0, 0, 2].into();
    let a = IpSlot::take(&map, ip, 2).expect("first");
    let _b = IpSlot::take(&map, ip, 2).expect("second");
    assert!(IpSlot::take(&map, ip, 2).is_none(), "over the cap");
    assert!(IpSlot::take(&map, [127, 0, 0, 1].into(), 2).is_some());
    drop(a);
    assert!(IpSlot::take(&map, ip, 2).is_some(), "a slot came back");
}

#[test]
fn a_head_that_dawdles_expires_and_a_request_in_flight_does_not() {
    let config = ListenConfig {
        header_read_timeout: Duration::ZERO,
        idle_timeout: Duration::from_secs(3600),
        ..ListenConfig::default()
    };
    let a = Arc::new(Activity::new());
    assert_eq!(a.expired(&config), None, "idle, within the idle timeout");
    a.moved(true);
    assert!(a.expired(&config).is_some(), "a head past its timeout");
    let call = a.begin();
    assert_eq!(a.expired(&config), None, "a request in flight");
    drop(call);
    assert_eq!(a.expired(&config), None, "answered: idle again");
}

#[test]
fn the_cap_closes_the_longest_waiting_idle_connection() {
    let registry = Registry::default();
    let dawdler = Arc::new(Activity::new());
    dawdler.moved(true);
    std::thread::sleep(Duration::from_millis(5));
    let idle = Arc::new(Activity::new());
    let busy = Arc::new(Activity::new());
    let _call = busy.begin();
    let _a = Listed::new(&registry, 1, Arc::clone(&busy));
    let _b = Listed::new(&registry, 2, Arc::clone(&idle));
    let c = Listed::new(&registry, 3, Arc::clone(&dawdler));
    // Dripping bytes does not make a dawdling head look fresh.
    dawdler.moved(true);
    let victim = oldest_idle(&registry).expect("a victim");
    assert!(Arc::ptr_eq(&victim, &dawdler));
    drop(c);
    let victim = oldest_idle(&registry).expect("a victim");
    assert!(
        Arc::ptr_eq(&victim, &idle),
        "never one with a request in flight"
    );
}

#[test]
fn repeated_events_are_logged_once_with_a_count() {
    let mut t = Throttle::default();
    assert_eq!(t.hit(), Some(0));
    assert_eq!(t.hit(), None);
    assert_eq!(t.hit(), None);
    t.last = Some(Instant::now() - Duration::from_secs(11));
    assert_eq!(t.hit(), Some(2));
}
