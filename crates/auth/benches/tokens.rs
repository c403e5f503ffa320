//! The cost of minting and verifying one room token (no HTTP).

use criterion::{Criterion, criterion_group, criterion_main};
use rounds_auth::{KeySet, RoomGrant};
use rounds_proto::{ROOM_AUDIENCE, Role, RoomClaims, grants_for};

fn tokens(c: &mut Criterion) {
    let now = 1_800_000_000;
    let keys = KeySet::generate(now);
    let grant = || RoomGrant {
        participant: "3f2a9c",
        name: "Patient",
        room: "b6c1d0e4",
        role: Role::Patient,
        grants: grants_for(Role::Patient),
    };
    c.bench_function("mint_room_token", |b| {
        b.iter(|| keys.mint_room("https://rounds.example", grant(), now, 3600))
    });
    let (token, _) = keys.mint_room("https://rounds.example", grant(), now, 3600);
    c.bench_function("verify_room_token", |b| {
        b.iter(|| {
            keys.verify::<RoomClaims>(&token, ROOM_AUDIENCE, now, 5)
                .is_ok()
        })
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
