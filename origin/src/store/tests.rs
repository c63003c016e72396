//! Storage round trips on real SQLite files.
#![expect(clippy::unwrap_used, reason = "tests")]
use super::*;

fn person() -> Person {
    Person {
        subject: SubjectId([1; 16]),
        phone_hash: "h".to_owned(),
        masked_name: "张*".to_owned(),
        id_last4: "002X".to_owned(),
        region: "110105".to_owned(),
        address: "x".to_owned(),
    }
}

fn decl(at: UnixTime) -> Declaration {
    Declaration {
        at,
        temperature: 36.5,
        symptoms: vec![],
        travel: vec!["济南".to_owned()],
    }
}

#[tokio::test]
async fn registration_is_once_and_declarations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = Store::open(&path).unwrap();
    assert!(store.register(person(), 1).await.unwrap());
    assert!(!store.register(person(), 2).await.unwrap());
    let s = person().subject;
    let a = store
        .declare(s, "k1".into(), "h1".into(), decl(10), "r1".into())
        .await
        .unwrap();
    assert_eq!(a, Applied::New);
    let b = store
        .declare(s, "k1".into(), "h1".into(), decl(11), "r2".into())
        .await
        .unwrap();
    assert_eq!(b, Applied::Replay("r1".into()));
    let c = store
        .declare(s, "k1".into(), "other".into(), decl(12), "r3".into())
        .await
        .unwrap();
    assert_eq!(c, Applied::Conflict);
    assert_eq!(store.declarations(s, 0).await.unwrap(), vec![decl(10)]);
    drop(store);
    // Reopening migrates nothing and keeps the data.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.person(s).await.unwrap(), Some(person()));
}

#[tokio::test]
async fn colours_and_due_subjects() {
    let store = Store::in_memory().unwrap();
    store.register(person(), 1).await.unwrap();
    let s = person().subject;
    let row = ColourRow {
        colour: Colour::Red,
        ruleset_version: 1,
        as_of: 5,
        next_change_at: Some(100),
    };
    assert_eq!(store.set_colour(s, row).await.unwrap(), None);
    assert_eq!(store.colour(s).await.unwrap(), Some(row));
    assert!(store.due(99).await.unwrap().is_empty());
    assert_eq!(store.due(100).await.unwrap(), vec![s]);
    assert_eq!(store.all_colours().await.unwrap().len(), 1);
}
