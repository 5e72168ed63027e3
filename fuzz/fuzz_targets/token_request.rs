//! The token realm's request parsing and decisions: the input as a GET
//! query with the first line as `Authorization` header, and as a POST form
//! body; whatever ticket comes out is checked against a fixed ticket key,
//! and whatever scopes come out are granted against one repository.
//! Nothing may panic, no grant ever names another repository or another
//! action than `pull` and `push`, and a pull ticket's grant never `push`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rise_registry::auth::AccessKind;
use rise_registry::registry::oci_token::scope::grant;
use rise_registry::registry::oci_token::ticket::TicketKey;
use rise_registry::serve::token::{from_form, from_query, percent_decode};

const REPOSITORY: &str = "rise-apps/my-app";

fuzz_target!(|data: &[u8]| {
    let _ = percent_decode(data);
    let (auth, query) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let query = String::from_utf8_lossy(query);
    let key = TicketKey::new(b"fuzz ticket key");
    for request in [from_query(Some(&query), auth), from_form(data)]
        .into_iter()
        .flatten()
    {
        let _ = key.verify(&request.ticket, 1_767_268_800);
        for kind in AccessKind::ALL {
            for access in grant(request.scopes.iter().map(String::as_str), REPOSITORY, kind) {
                assert_eq!(access.name, REPOSITORY);
                assert_eq!(access.kind, "repository");
                assert!(access.actions.iter().all(|a| *a == "pull" || *a == "push"));
                assert!(kind.is_push() || !access.actions.contains(&"push"));
            }
        }
    }
});
