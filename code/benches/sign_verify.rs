//! Signing and verifying one code: `cargo bench -p shouhu-code --bench sign_verify`.
#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use criterion::{Criterion, criterion_group, criterion_main};
use shouhu_code::{
    Claims, CodeId, Colour, KeyPair, KeyRole, Source, SubjectId, TrustList, VerifyPolicy, verify,
};

const T0: u64 = 1_796_000_000;

fn setup() -> (KeyPair, Claims) {
    let key = KeyPair::from_seed(
        [7; 32],
        KeyRole::Origin,
        "370000".parse().unwrap(),
        T0 - 1,
        T0 + 86_400,
    );
    let claims = Claims {
        issuer: "370000".parse().unwrap(),
        issued_at: T0,
        expires_at: T0 + 300,
        code_id: CodeId([1; 12]),
        colour: Colour::Green,
        subject: SubjectId([2; 16]),
        masked_name: "张*".to_owned(),
        id_last4: "123X".to_owned(),
        source: Source::Origin,
        as_of: T0 - 60,
        ruleset_version: 1,
    };
    (key, claims)
}

fn bench(c: &mut Criterion) {
    let (key, claims) = setup();
    let text = key.sign(&claims).unwrap();
    let trust = TrustList::new(vec![key.public().clone()]).unwrap();
    let policy = VerifyPolicy::default();
    c.bench_function("sign", |b| {
        b.iter(|| key.sign(std::hint::black_box(&claims)))
    });
    c.bench_function("verify", |b| {
        b.iter(|| verify(std::hint::black_box(&text), &trust, T0 + 1, &policy))
    });
    c.bench_function("qr_code", |b| {
        b.iter(|| shouhu_code::qr::qr_code(std::hint::black_box(&text)))
    });
    c.bench_function("qr_svg", |b| {
        b.iter(|| shouhu_code::qr_svg(std::hint::black_box(&text)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
