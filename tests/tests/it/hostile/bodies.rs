//! Bad requests at both APIs get their JSON error, readable by any client:
//! an oversized body sent whole, a request line that is not text, an
//! error about a card number or a huge id.

use tokio::net::{TcpStream, UnixStream};

use pos_testkit::agent_proc::AgentDir;
use pos_testkit::central_proc::Central;

use super::{exchange, host_port, request};

/// Well over every body limit (central's upload: 1 MiB; the agent's
/// `max_body_bytes`), and over what the kernel buffers on loopback, so
/// that without the linger the client's send is reset.
const OVERSIZED_BYTES: usize = 8 * 1_048_576;

fn card() -> String {
    // A Luhn-valid number in the Visa range (a well-known test PAN).
    "4111111111111111".to_string()
}

async fn central_tcp(central: &Central) -> TcpStream {
    TcpStream::connect(host_port(&central.url)).await.unwrap()
}

#[tokio::test]
async fn an_oversized_body_sent_whole_gets_a_readable_413_at_central_and_the_agent() {
    let central = Central::start_insecure().unwrap();
    let token = central.add_terminal("store-1-reg-1").unwrap();
    let body = vec![0u8; OVERSIZED_BYTES];
    let bearer = format!("Bearer {token}");
    let upload = request(
        "POST",
        "/v1/sync/upload",
        &[
            ("authorization", &bearer),
            ("pos-sync-protocol", "2"),
            ("content-type", "application/x-postcard"),
        ],
        &body,
    );
    let answer = exchange(central_tcp(&central).await, &upload).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "too_large");

    let agent = AgentDir::new().unwrap();
    let running = agent.start().await.unwrap();
    let sale = request(
        "POST",
        "/v1/sales",
        &[("content-type", "application/json")],
        &body,
    );
    let stream = UnixStream::connect(running.socket()).await.unwrap();
    let answer = exchange(stream, &sale).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "body_too_large");
}

#[tokio::test]
async fn a_request_line_that_is_not_text_gets_the_json_error_at_both() {
    let central = Central::start_insecure().unwrap();
    let garbage = b"GET /v1/\xff\xfe\x00 HTTP/1.1\r\nhost: x\r\n\r\n";
    for addr in [host_port(&central.url), host_port(&central.admin_url)] {
        let answer = exchange(TcpStream::connect(addr).await.unwrap(), garbage).await;
        assert_eq!(answer.status, 400, "{answer:?}");
        assert_eq!(answer.body["error"]["code"], "invalid", "{answer:?}");
    }
    let agent = AgentDir::new().unwrap();
    let running = agent.start().await.unwrap();
    let stream = UnixStream::connect(running.socket()).await.unwrap();
    let answer = exchange(stream, garbage).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.body["error"]["code"].is_string(), "{answer:?}");
}

#[tokio::test]
async fn errors_never_echo_a_card_number_and_stay_small() {
    let central = Central::start_insecure().unwrap();
    let admin_token = std::fs::read_to_string(central.dir().join("admin.token")).unwrap();
    let bearer = format!("Bearer {}", admin_token.trim());
    let admin = || async {
        TcpStream::connect(host_port(&central.admin_url))
            .await
            .unwrap()
    };

    let lookup = request(
        "GET",
        &format!("/v1/admin/members/{}", card()),
        &[("authorization", &bearer)],
        b"",
    );
    let answer = exchange(admin().await, &lookup).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    let text = String::from_utf8_lossy(&answer.raw_body);
    assert!(!text.contains(&card()), "{text}");

    // A member id of 48 KiB (within hyper's bound on a request target).
    let huge = "M".repeat(48 * 1_024);
    let lookup = request(
        "GET",
        &format!("/v1/admin/members/{huge}"),
        &[("authorization", &bearer)],
        b"",
    );
    let answer = exchange(admin().await, &lookup).await;
    assert_eq!(answer.status, 404, "{}", answer.head);
    assert!(
        answer.raw_body.len() <= 1_024,
        "an error of {} bytes",
        answer.raw_body.len()
    );

    let agent = AgentDir::new().unwrap();
    let running = agent.start().await.unwrap();
    let lost = request("GET", &format!("/v1/cards/{}", card()), &[], b"");
    let stream = UnixStream::connect(running.socket()).await.unwrap();
    let answer = exchange(stream, &lost).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    let text = String::from_utf8_lossy(&answer.raw_body);
    assert!(!text.contains(&card()), "{text}");
}
