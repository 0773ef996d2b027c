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

/// The same registry behaviour in a directory and, when the S3-compatible server of `.ci/run` is
/// up, in object storage.
fn both_stores(test: impl Fn(&Registry)) {
    let dir = tempfile::tempdir().unwrap();
    test(&Registry::open(dir.path()).unwrap());
    if let Some(s3) = caretaker_test_support::s3_server() {
        let url = s3.fresh_url("registry");
        test(&Registry::at(Path::new(&url), &s3.options()).unwrap());
    }
}

#[test]
fn deploys_rollbacks_promotions_and_pruning_work_the_same_in_object_storage() {
    both_stores(|reg| {
        assert!(reg.champion().unwrap().is_none() && reg.versions().unwrap().is_empty());
        let lock = reg.lock().unwrap();
        let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
        let v2 = reg.deploy(&lock, b"two", card("b"), "better", Utc::now()).unwrap();
        let v3 = reg.store(&lock, b"three", card("c"), Utc::now()).unwrap();
        assert_eq!((v1, v2, v3), (ModelVersion(1), ModelVersion(2), ModelVersion(3)), "{}", reg.root().display());
        assert_eq!(reg.champion().unwrap().unwrap().version, v2);
        let (card2, bytes) = reg.load(v2).unwrap();
        assert_eq!((card2.replaced, bytes.as_slice()), (Some(v1), &b"two"[..]));
        let listed: Vec<(ModelVersion, bool)> =
            reg.list().unwrap().iter().map(|s| (s.card.version, s.is_champion)).collect();
        assert_eq!(listed, [(v3, false), (v2, true), (v1, false)]);
        assert_eq!(reg.rollback(&lock, None, "v2 misbehaves", Utc::now()).unwrap(), (v2, v1));
        assert_eq!(reg.promote(&lock, v3, "the challenger", Utc::now()).unwrap(), Some(v1));
        let actions: Vec<(LedgerAction, ModelVersion)> =
            reg.ledger().unwrap().iter().map(|e| (e.action, e.version)).collect();
        assert_eq!(
            actions,
            [
                (LedgerAction::Deploy, v1),
                (LedgerAction::Deploy, v2),
                (LedgerAction::Rollback, v1),
                (LedgerAction::Promote, v3)
            ]
        );
        // Every version was champion once: none is pruned. A fourth, stored, goes with keep_last 1.
        let v4 = reg.store(&lock, b"four", card("d"), Utc::now()).unwrap();
        let v5 = reg.store(&lock, b"five", card("e"), Utc::now()).unwrap();
        let pruned: Vec<ModelVersion> = reg.prune(&lock, 1).unwrap().into_iter().map(|(v, _)| v).collect();
        assert_eq!(pruned, [v4]);
        assert_eq!(reg.versions().unwrap(), [v1, v2, v3, v5]);
        assert!(matches!(reg.load(v4), Err(Error::UnknownVersion { .. })));
    });
}

#[test]
fn two_runs_weighed_against_the_same_champion_cannot_both_deploy() {
    both_stores(|reg| {
        let lock = reg.lock().unwrap();
        let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
        // Two runs read the champion, weigh their candidates against it, and both want to deploy.
        let seen_by_a = reg.observe().unwrap();
        let seen_by_b = reg.observe().unwrap();
        let mut card_a = card("a2");
        card_a.run_id = Some("run-a".into());
        let va = reg.deploy_over(&lock, &seen_by_a, b"a", card_a, "a is better", Utc::now()).unwrap();
        let err = reg.deploy_over(&lock, &seen_by_b, b"b", card("b2"), "b is better", Utc::now()).unwrap_err();
        let Error::ChampionChanged { stored, was, now } = &err else { panic!("{err}") };
        assert_eq!((*was, now.as_ref().map(|p| p.version)), (Some(v1), Some(va)));
        let text = err.to_string();
        assert!(text.contains(&format!("{va} (run run-a) serves now")) && text.contains("not deployed"), "{text}");
        // The loser's model is kept, promotable; the winner serves; the ledger holds one deploy.
        assert_eq!(reg.champion().unwrap().unwrap().version, va);
        assert_eq!(reg.load(*stored).unwrap().1, b"b");
        let deploys: Vec<ModelVersion> = reg.ledger().unwrap().iter().map(|e| e.version).collect();
        assert_eq!(deploys, [v1, va]);
        // An operator's rollback in between refuses the same way.
        let seen = reg.observe().unwrap();
        reg.rollback(&lock, None, "back", Utc::now()).unwrap();
        assert!(matches!(
            reg.deploy_over(&lock, &seen, b"c", card("c"), "c", Utc::now()),
            Err(Error::ChampionChanged { .. })
        ));
        assert_eq!(reg.champion().unwrap().unwrap().version, v1);
    });
}

#[test]
fn a_version_number_taken_elsewhere_is_skipped_and_an_unfinished_version_is_not_listed() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let url = s3.fresh_url("registry");
    let reg = Registry::at(Path::new(&url), &s3.options()).unwrap();
    let lock = reg.lock().unwrap();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
    // Another machine claimed v0002 and died before its blake3.json: not a version, yet taken.
    let bucket = caretaker_objects::Bucket::open(&url, &s3.options()).unwrap();
    bucket.put("versions/v0002/claim.json", b"{}".to_vec()).unwrap();
    bucket.put("versions/v0002/model.msgpack", b"half".to_vec()).unwrap();
    assert_eq!(reg.versions().unwrap(), [v1]);
    let v3 = reg.deploy(&lock, b"three", card("c"), "next", Utc::now()).unwrap();
    assert_eq!(v3, ModelVersion(3));
    assert_eq!(reg.versions().unwrap(), [v1, v3]);
    assert_eq!(reg.load(v3).unwrap().0.replaced, Some(v1));
}

#[test]
fn a_registry_in_object_storage_that_cannot_be_reached_is_named_without_its_keys() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let mut options = s3.options();
    options.insert("endpoint".into(), "http://127.0.0.1:9".into());
    options.insert("connect_timeout".into(), "2s".into());
    let reg = Registry::at(Path::new("s3://caretaker-test/unreachable/models"), &options).unwrap();
    let text = reg.champion().unwrap_err().to_string();
    assert!(
        text.contains("s3://caretaker-test/unreachable/models/champion.json") && text.contains("unreachable"),
        "{text}"
    );
    assert!(!text.contains(&s3.secret_key), "{text}");
    let missing = Registry::at(Path::new("s3://no-such-bucket-caretaker/models"), &s3.options()).unwrap();
    let text = missing.champion().unwrap_err().to_string();
    assert!(text.contains("no such bucket"), "{text}");
}

#[test]
fn a_promoted_loser_rolls_back_to_the_champion_it_replaced_when_promoted() {
    both_stores(|reg| {
        let lock = reg.lock().unwrap();
        let v1 = reg.deploy(&lock, b"one", card("a"), "first", Utc::now()).unwrap();
        let seen = reg.observe().unwrap();
        let v2 = reg.deploy(&lock, b"two", card("b"), "second", Utc::now()).unwrap();
        // Weighed against v1, refused: its card names v1 as what it would have replaced.
        let Err(Error::ChampionChanged { stored: v3, .. }) =
            reg.deploy_over(&lock, &seen, b"three", card("c"), "third", Utc::now())
        else {
            panic!("the second deploy over v1 is refused")
        };
        assert_eq!(reg.card(v3).unwrap().replaced, Some(v1));
        // Promoted over v2 by hand, then rolled back: v2 serves again, not v1.
        assert_eq!(reg.promote(&lock, v3, "by hand", Utc::now()).unwrap(), Some(v2));
        assert_eq!(reg.rollback(&lock, None, "undo", Utc::now()).unwrap(), (v3, v2));
        // A second rollback goes one step further back (v2 replaced v1), not back to v3.
        assert_eq!(reg.rollback(&lock, None, "further", Utc::now()).unwrap(), (v2, v1));
    });
}

#[test]
fn in_object_storage_a_swap_without_its_ledger_line_is_recovered_once_it_is_old_not_while_its_writer_may_live() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let url = s3.fresh_url("registry");
    let reg = Registry::at(Path::new(&url), &s3.options()).unwrap();
    let bucket = caretaker_objects::Bucket::open(&url, &s3.options()).unwrap();
    let lock = reg.lock().unwrap();
    let now = Utc::now();
    let v1 = reg.deploy(&lock, b"one", card("a"), "first", now).unwrap();
    let v2 = reg.store(&lock, b"two", card("b"), now).unwrap();
    // A writer on another machine swapped the pointer to v2 a moment ago and is about to append.
    let pointer = |since| {
        let p = ChampionPointer { version: v2, since, reason: "better".into(), run_id: Some("run-b".into()) };
        serde_json::to_vec(&p).unwrap()
    };
    bucket.put("champion.json", pointer(now)).unwrap();
    reg.store(&lock, b"three", card("c"), now).unwrap();
    assert_eq!(reg.ledger().unwrap().iter().map(|e| e.version).collect::<Vec<_>>(), [v1], "left to its writer");
    // An hour on, nobody appended: that writer died between the two writes.
    bucket.put("champion.json", pointer(now - chrono::TimeDelta::hours(1))).unwrap();
    reg.store(&lock, b"four", card("d"), now).unwrap();
    let ledger = reg.ledger().unwrap();
    assert_eq!(ledger.iter().map(|e| e.version).collect::<Vec<_>>(), [v1, v2]);
    assert!(ledger[1].reason.starts_with("recovered:") && ledger[1].reason.ends_with("better"), "{}", ledger[1].reason);
}
