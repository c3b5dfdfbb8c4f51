//! The checks behind the fuzz targets, as plain functions of bytes, so that the fuzzers
//! (`cargo +nightly fuzz run <target>`) and a stable `cargo test` replaying the committed corpus
//! run exactly the same code. Each panics on a broken invariant; the invariants are the shared
//! ones (`election_core::testing::invariants`, through `testing::machine` and `election_mem::sim`).
#![forbid(unsafe_code)]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use election_core::testing::machine::{run_steps, Setup, Step};
use election_core::{Candidate, ConfigError, ElectionPath, MAX_ID_LEN, MAX_PATH_LEN};
use election_mem::sim::{run_schedule, Schedule};

/// Target `machine`: the I/O-free state machine fed an arbitrary sequence of events against the
/// model service; every invariant (S1-S5, L1, the driver's contract) after every step.
pub fn check_machine(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let Ok(mut steps) = Vec::<Step>::arbitrary(&mut u) else {
        return;
    };
    // Late-applied creates expose an open finding (see election-core/tests/machine_steps.rs).
    steps.retain(|s| *s != Step::LateCreate);
    if let Err((v, trace)) = run_steps(&setup, &steps[..steps.len().min(400)]) {
        panic!("{v}\n{trace}");
    }
}

/// Target `sim`: the simulation fed an arbitrary schedule; every invariant after every op,
/// liveness once the faults stop, nothing left after stop.
pub fn check_schedule(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mut schedule) = Schedule::arbitrary(&mut u) else {
        return;
    };
    // Keep runs short: a fuzzer wants many of them.
    schedule.ops.truncate(200);
    schedule.setup.max_candidates = schedule.setup.max_candidates.min(12);
    run_schedule(&schedule).check();
}

/// Arbitrary configuration input.
#[derive(Debug, Arbitrary)]
pub struct Input {
    /// An election path.
    pub path: String,
    /// A candidate id.
    pub id: String,
    /// Payload length.
    pub payload_len: u32,
    /// Session timeout in ms.
    pub timeout_ms: u32,
    /// Step-down fraction.
    pub fraction: f64,
    /// Grace in ms, if set.
    pub grace_ms: Option<u32>,
    /// A ZooKeeper connect string.
    pub connect: String,
}

/// Target `input`: validation of paths, ids, configuration and connect strings never panics,
/// and what it accepts keeps the documented rules (checked here independently).
pub fn check_input(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    if let Ok(p) = ElectionPath::new(input.path.clone()) {
        let s = p.as_str();
        assert!(
            s.starts_with('/') && s.len() > 1 && s.len() <= MAX_PATH_LEN,
            "{s:?}"
        );
        assert!(!s.ends_with('/') && !s.contains("//"), "{s:?}");
        assert!(p.segments().all(|x| x != "." && x != ".."), "{s:?}");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert_eq!(ElectionPath::new(s).as_ref(), Ok(&p), "not idempotent");
    }
    let timeout = Duration::from_millis(u64::from(input.timeout_ms));
    let mut b = Candidate::builder(input.path.clone(), input.id.clone())
        .payload(vec![0; (input.payload_len % (1 << 20)) as usize])
        .session_timeout(timeout)
        .step_down_fraction(input.fraction);
    if let Some(g) = input.grace_ms {
        b = b.leader_grace(Duration::from_millis(u64::from(g)));
    }
    match b.build() {
        Ok(config) => {
            assert!(ElectionPath::new(input.path.clone()).is_ok());
            assert!(!input.id.is_empty() && input.id.len() <= MAX_ID_LEN);
            assert!(input.fraction > 0.0 && input.fraction < 1.0);
            assert!(!timeout.is_zero());
            let grace = config
                .grace_for(timeout)
                .expect("a built config has a grace that fits");
            assert!(
                grace < timeout.mul_f64(input.fraction),
                "grace {grace:?} does not fit"
            );
        }
        Err(e) => {
            // Typed, and says something.
            let _: &ConfigError = &e;
            assert!(!e.to_string().is_empty());
        }
    }
    if let Ok(zk) = election_zk::ZkBackend::builder(input.connect.clone()).build() {
        assert!(!zk.hosts().is_empty(), "{:?}", input.connect);
        if let Some(chroot) = zk.chroot() {
            assert!(ElectionPath::new(chroot.as_str()).is_ok());
        }
    }
    if let Some(name) = election_zk::EntryName::parse(&input.id) {
        assert_eq!(election_zk::EntryName::parse(&name.to_string()), Some(name));
    }
}

/// Target `decode`: the decoders of what the service hands back, which anyone with write access
/// to it can craft: entry data as a [`CandidateRecord`](election_core::CandidateRecord) (a lying
/// length prefix, a bad id, an oversized payload) and child names as ZooKeeper entry names. No
/// panic; what decodes is bounded by the limits and encodes back to the same bytes.
pub fn check_decode(data: &[u8]) {
    use election_core::record::RecordError;
    use election_core::{CandidateRecord, MAX_PAYLOAD_LEN};
    match CandidateRecord::decode(data) {
        Ok(record) => {
            assert!(!record.id.is_empty() && record.id.len() <= MAX_ID_LEN);
            assert!(record.payload.len() <= MAX_PAYLOAD_LEN);
            assert_eq!(record.encode(), data, "decode then encode changed the bytes");
        }
        Err(RecordError::Truncated) => {
            // Shorter than its header says: no byte past the end was trusted.
            if data.len() >= 3 {
                let len = usize::from(u16::from_be_bytes([data[1], data[2]]));
                assert!(data.len() - 3 < len, "{} bytes, prefix {len}", data.len());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // Either form of an entry of ours (a record, or a compatibility mode's plain id).
    if let Ok(record) = CandidateRecord::decode_entry(data) {
        assert!(!record.id.is_empty() && record.id.len() <= MAX_ID_LEN);
        assert!(record.payload.len() <= MAX_PAYLOAD_LEN);
    }
    // The same bytes, as a child name the service lists.
    let name = String::from_utf8_lossy(data);
    if let Some(parsed) = election_zk::EntryName::parse(&name) {
        assert_eq!(parsed.to_string(), name, "an entry name round-trips");
    }
}
