//! The fault-injecting proxy does what each mode says, against a tiny
//! line-based upstream that counts the requests it acted on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pos_testkit::proxy::{Mode, Proxy};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Long enough that an answer that can come will have come on a loaded
/// machine; only used where the expected outcome is "no answer".
const NO_ANSWER_WAIT_MS: u64 = 500;
/// Upper bound for an answer that must come.
const ANSWER_WAIT_MS: u64 = 10_000;

/// Answers each line with "ok N", N the count of lines acted on so far.
async fn upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acted = Arc::new(AtomicU64::new(0));
    let counter = acted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut lines = BufReader::new(rd).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    if wr.write_all(format!("ok {n}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, acted)
}

/// Sends one line and waits up to `wait_ms` for the answer line.
async fn ask(addr: SocketAddr, wait_ms: u64) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    stream
        .write_all(b"hello\n")
        .await
        .map_err(|e| format!("write: {:?}", e.kind()))?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(wait_ms), async {
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte).await {
                Ok(0) => return Err("eof".to_string()),
                Ok(_) if byte[0] == b'\n' => return Ok(()),
                Ok(_) => answer.push(byte[0]),
                Err(e) => return Err(format!("read: {:?}", e.kind())),
            }
        }
    })
    .await;
    match read {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => Ok(String::from_utf8_lossy(&answer).into_owned()),
    }
}

#[tokio::test]
async fn pass_forwards_both_ways() {
    let (up, acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    assert_eq!(ask(proxy.addr(), ANSWER_WAIT_MS).await, Ok("ok 1".into()));
    assert_eq!(ask(proxy.addr(), ANSWER_WAIT_MS).await, Ok("ok 2".into()));
    assert_eq!(acted.load(Ordering::SeqCst), 2);
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn drop_refuses_connections_until_switched_back() {
    let (up, acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.set_mode(Mode::Drop);
    // The listener closes asynchronously; wait until a connect is refused.
    let mut refused = false;
    for _ in 0..200 {
        match TcpStream::connect(proxy.addr()).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(refused, "connections were never refused");
    assert_eq!(acted.load(Ordering::SeqCst), 0);
    proxy.set_mode(Mode::Pass);
    let mut answer = Err(String::new());
    for _ in 0..200 {
        answer = ask(proxy.addr(), ANSWER_WAIT_MS).await;
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer, Ok("ok 1".into()));
}

#[tokio::test]
async fn delay_holds_the_answer_back() {
    let (up, acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.set_mode(Mode::Delay(Duration::from_secs(30)));
    assert_eq!(
        ask(proxy.addr(), NO_ANSWER_WAIT_MS).await,
        Err("no answer".into())
    );
    assert_eq!(acted.load(Ordering::SeqCst), 0);
    proxy.set_mode(Mode::Delay(Duration::from_millis(1)));
    assert_eq!(ask(proxy.addr(), ANSWER_WAIT_MS).await, Ok("ok 1".into()));
}

#[tokio::test]
async fn reset_sends_no_answer_and_forwards_nothing() {
    let (up, acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.set_mode(Mode::Reset);
    let answer = ask(proxy.addr(), ANSWER_WAIT_MS).await;
    assert!(
        matches!(&answer, Err(e) if e.contains("ConnectionReset") || e == "eof" || e.contains("BrokenPipe")),
        "{answer:?}"
    );
    assert_eq!(acted.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.resets(), 1);
}

#[tokio::test]
async fn blackhole_accepts_and_never_answers() {
    let (up, acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.set_mode(Mode::Blackhole);
    assert_eq!(
        ask(proxy.addr(), NO_ANSWER_WAIT_MS).await,
        Err("no answer".into())
    );
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(acted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn lose_answer_lets_the_server_act_but_the_client_never_hears() {
    let (up, acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    proxy.set_mode(Mode::LoseAnswer);
    let answer = ask(proxy.addr(), ANSWER_WAIT_MS).await;
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(acted.load(Ordering::SeqCst), 1, "the server acted");
    assert_eq!(proxy.answers_lost(), 1);
    proxy.set_mode(Mode::Pass);
    assert_eq!(ask(proxy.addr(), ANSWER_WAIT_MS).await, Ok("ok 2".into()));
}

#[tokio::test]
async fn switching_the_mode_cuts_open_connections() {
    let (up, _acted) = upstream().await;
    let proxy = Proxy::start(up).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream.write_all(b"one\n").await.unwrap();
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok 1\n");
    proxy.set_mode(Mode::Blackhole);
    // The pooled connection is closed, not silently kept passing.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_millis(ANSWER_WAIT_MS),
        stream.read_to_end(&mut rest),
    )
    .await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}
