use super::*;

fn card(name: &str) -> ModelCard {
    ModelCard {
        version: ModelVersion(0),
        name: name.into(),
        family: "decision_tree".into(),
        params: serde_json::json!({}),
        features: vec!["x".into()],
        metrics: None,
        threshold: 0.5,
        calibration: None,
        train_rows: 10,
        train_hash: "h".into(),
        config_hash: "c".into(),
        seed: 1,
        code_version: "test".into(),
        created_at: Utc::now(),
        run_id: Some("r1".into()),
        replaced: None,
        model_blake3: String::new(),
        model_bytes: 3,
    }
}

#[test]
fn deploy_moves_the_pointer_and_records_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    assert!(reg.champion().unwrap().is_none());
    let lock = reg.lock().unwrap();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    let v2 = reg.deploy(&lock, b"two", card("b"), "better", Utc::now()).unwrap();
    assert_eq!((v1, v2), (ModelVersion(1), ModelVersion(2)));
    assert_eq!(reg.champion().unwrap().unwrap().version, v2);
    let (c, bytes) = reg.load(v2).unwrap();
    assert_eq!((c.replaced, bytes.as_slice()), (Some(v1), &b"two"[..]));
    let ledger = reg.ledger().unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1].previous, Some(v1));
}

#[test]
fn a_reset_deploys_records_a_reset_line_with_its_reason_and_can_be_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    let v2 = reg.reset(&lock, b"two", card("b"), "champion overfits a stale week", Utc::now()).unwrap();
    assert_eq!(reg.champion().unwrap().unwrap().version, v2);
    let last = reg.ledger().unwrap().pop().unwrap();
    assert_eq!((last.action, last.version, last.previous), (LedgerAction::Reset, v2, Some(v1)));
    assert_eq!(last.reason, "champion overfits a stale week");
    assert_eq!(serde_json::to_value(last.action).unwrap(), "reset");
    assert_eq!(reg.rollback(&lock, None, "undo the reset", Utc::now()).unwrap(), (v2, v1));
}

#[test]
fn a_torn_last_ledger_line_is_cut_off_before_the_next_deploy_appends() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    // A crash (or a full disk) mid-append leaves half a line.
    let ledger_path = dir.path().join("ledger.jsonl");
    let mut file = std::fs::OpenOptions::new().append(true).open(&ledger_path).unwrap();
    std::io::Write::write_all(&mut file, br#"{"at":"2026-11-28T02:00:00Z","action":"depl"#).unwrap();
    drop(file);
    assert_eq!(reg.ledger().unwrap().len(), 1, "the torn line is ignored on read");
    // Two deploys later the ledger reads whole: every line, in order, and a rollback follows it.
    let v2 = reg.deploy(&lock, b"two", card("b"), "second", Utc::now()).unwrap();
    let v3 = reg.deploy(&lock, b"three", card("c"), "third", Utc::now()).unwrap();
    let ledger = reg.ledger().unwrap();
    let versions: Vec<ModelVersion> = ledger.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![v1, v2, v3]);
    assert!(
        std::fs::read_to_string(&ledger_path).unwrap().lines().all(|l| serde_json::from_str::<LedgerEntry>(l).is_ok())
    );
    assert_eq!(reg.rollback(&lock, None, "undo", Utc::now()).unwrap(), (v3, v2));
    assert_eq!(reg.ledger().unwrap().len(), 4);

    // Torn inside a character (a reason with "é"): still a torn line, cut before the next append.
    let mut file = std::fs::OpenOptions::new().append(true).open(&ledger_path).unwrap();
    std::io::Write::write_all(&mut file, &"{\"reason\":\"caf\u{e9}".as_bytes()[..15]).unwrap();
    drop(file);
    assert_eq!(reg.ledger().unwrap().len(), 4, "readable with the torn character");
    reg.deploy(&lock, b"four", card("d"), "fourth", Utc::now()).unwrap();
    assert_eq!(reg.ledger().unwrap().len(), 5);
    // A whole entry that lost only its newline is kept, not cut.
    let text = std::fs::read_to_string(&ledger_path).unwrap();
    std::fs::write(&ledger_path, text.trim_end_matches('\n')).unwrap();
    reg.deploy(&lock, b"five", card("e"), "fifth", Utc::now()).unwrap();
    assert_eq!(reg.ledger().unwrap().len(), 6);
}

#[test]
fn rollback_returns_to_the_replaced_version_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    reg.deploy(&lock, b"two", card("b"), "better", Utc::now()).unwrap();
    let (from, to) = reg.rollback(&lock, None, "v2 misbehaves", Utc::now()).unwrap();
    assert_eq!((from, to), (ModelVersion(2), ModelVersion(1)));
    assert_eq!(reg.champion().unwrap().unwrap().version, ModelVersion(1));
    let last = reg.ledger().unwrap().pop().unwrap();
    assert_eq!(last.action, LedgerAction::Rollback);
    assert_eq!(last.reason, "v2 misbehaves");
    // v0001 replaced nothing: a second rollback is refused and changes nothing.
    let err = reg.rollback(&lock, None, "again", Utc::now()).unwrap_err();
    assert!(err.to_string().contains("nothing to roll back to"), "{err}");
    assert_eq!(reg.champion().unwrap().unwrap().version, ModelVersion(1));
}

#[test]
fn a_stored_challenger_can_be_promoted_and_the_promotion_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    let v2 = reg.store(&lock, b"two", card("b"), Utc::now()).unwrap();
    assert_eq!(reg.champion().unwrap().unwrap().version, v1, "storing does not deploy");
    let previous = reg.promote(&lock, v2, "the gate was too strict on recall", Utc::now()).unwrap();
    assert_eq!(previous, Some(v1));
    assert_eq!(reg.champion().unwrap().unwrap().version, v2);
    let last = reg.ledger().unwrap().pop().unwrap();
    assert_eq!((last.action, last.version, last.previous), (LedgerAction::Promote, v2, Some(v1)));
    assert!(reg.promote(&lock, v2, "again", Utc::now()).unwrap_err().to_string().contains("already the champion"));
}

#[test]
fn a_tampered_card_is_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    let path = dir.path().join("versions/v0001/card.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"decision_tree\"", "\"random_forest\"");
    std::fs::write(&path, text).unwrap();
    let err = reg.load(v1).unwrap_err().to_string();
    assert!(err.contains("v0001/card.json") && err.contains("does not match"), "{err}");
}

#[test]
fn a_tampered_model_is_refused_on_load_and_as_a_rollback_target() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    reg.deploy(&lock, b"two", card("b"), "second", Utc::now()).unwrap();
    std::fs::write(dir.path().join("versions/v0001/model.msgpack"), b"evil").unwrap();
    let err = reg.load(ModelVersion(1)).unwrap_err().to_string();
    assert!(err.contains("v0001/model.msgpack") && err.contains("does not match"), "{err}");
    assert!(reg.rollback(&lock, None, "x", Utc::now()).is_err());
    assert_eq!(reg.champion().unwrap().unwrap().version, ModelVersion(2));
}

#[test]
fn a_second_writer_is_told_who_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let _held = reg.lock().unwrap();
    let err = reg.lock().unwrap_err().to_string();
    assert!(err.contains("the model registry") && err.contains("in use by another caretaker process"), "{err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
}

#[test]
fn a_missing_ledger_line_is_recovered_and_staging_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    // Simulate a crash after the pointer swap of v2: version and pointer, no ledger line.
    reg.deploy(&lock, b"two", card("b"), "second", Utc::now()).unwrap();
    let ledger = dir.path().join("ledger.jsonl");
    let text = std::fs::read_to_string(&ledger).unwrap();
    std::fs::write(&ledger, text.lines().next().unwrap().to_string() + "\n").unwrap();
    std::fs::create_dir_all(dir.path().join("versions/.staging-v0009-1")).unwrap();
    reg.deploy(&lock, b"three", card("c"), "third", Utc::now()).unwrap();
    let entries = reg.ledger().unwrap();
    let versions: Vec<_> = entries.iter().map(|e| e.version.0).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert!(entries[1].reason.starts_with("recovered"));
    assert!(!dir.path().join("versions/.staging-v0009-1").exists());
}

#[test]
fn pruning_keeps_the_last_n_and_every_version_that_was_ever_champion() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let lock = reg.lock().unwrap();
    reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    // Versions that never served: written as a crashed deploy would leave them.
    for v in 2..=4 {
        let d = dir.path().join(format!("versions/v{v:04}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.msgpack"), vec![0u8; 100]).unwrap();
    }
    reg.deploy(&lock, b"five", card("e"), "second", Utc::now()).unwrap();
    reg.deploy(&lock, b"six", card("f"), "third", Utc::now()).unwrap();
    assert_eq!(reg.prunable(2).unwrap(), [ModelVersion(2), ModelVersion(3), ModelVersion(4)]);
    let removed = reg.prune(&lock, 2).unwrap();
    assert_eq!(removed.iter().map(|(v, _)| v.0).collect::<Vec<_>>(), [2, 3, 4]);
    assert!(removed.iter().all(|(_, bytes)| *bytes == 100));
    assert_eq!(reg.versions().unwrap(), [ModelVersion(1), ModelVersion(5), ModelVersion(6)]);
    assert_eq!(reg.champion().unwrap().unwrap().version, ModelVersion(6));
}
