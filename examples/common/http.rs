//! A tiny HTTP/1.1 server and client on spindle's TCP sockets: just enough
//! HTTP for the seed tutorials' "fetch many URLs" scenarios to go over real
//! sockets. One request per connection (`Connection: close`).
//!
//! The server answers `GET` for the paths its route function knows, after
//! that path's delay (the slow server the tutorials simulate with
//! `asyncio.sleep`); the client sends a `GET` and reads the response, whose
//! body length comes from `Content-Length`.

use spindle::net::{TcpListener, TcpStream};
use spindle::{Error, Result, Task};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest request or response head either side accepts.
const MAX_HEAD: usize = 8 * 1024;

/// What the server counted.
#[derive(Default)]
struct Counters {
    /// Requests read and parsed.
    received: AtomicUsize,
    /// Responses written completely.
    answered: AtomicUsize,
    /// Requests in their delay now, and the most at once.
    in_delay: AtomicUsize,
    max_in_delay: AtomicUsize,
}

/// What the server saw, once stopped.
#[derive(Clone, Copy, Debug)]
pub struct ServerStats {
    pub received: usize,
    pub answered: usize,
    /// The most requests the server was working on at the same time.
    pub max_concurrent: usize,
}

/// A server running in its own task, on `127.0.0.1` and a free port.
pub struct Server {
    addr: SocketAddr,
    task: Task<()>,
    counters: Arc<Counters>,
}

/// A route function: the delay before answering `path`, or `None` (404).
pub type Routes = dyn Fn(&str) -> Option<Duration> + Send + Sync;

impl Server {
    /// Binds `127.0.0.1:0` and serves in a new task until [`stop`](Self::stop).
    pub async fn start(
        routes: impl Fn(&str) -> Option<Duration> + Send + Sync + 'static,
    ) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let routes: Arc<Routes> = Arc::new(routes);
        let task = spindle::task::Builder::new()
            .name(format!("http-server-{addr}"))
            .spawn(serve(listener, routes, counters.clone()));
        Ok(Server {
            addr,
            task,
            counters,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server: its task, and with it every connection it is
    /// still serving, is cancelled.
    pub async fn stop(self) -> Result<ServerStats> {
        self.task.cancel();
        match self.task.await {
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(e),
            Ok(()) => unreachable!("the server loops until cancelled"),
        }
        let c = &self.counters;
        Ok(ServerStats {
            received: c.received.load(Ordering::SeqCst),
            answered: c.answered.load(Ordering::SeqCst),
            max_concurrent: c.max_in_delay.load(Ordering::SeqCst),
        })
    }
}

/// Accepts connections and serves each in a child task of one task group,
/// so cancelling the server cancels the connections too.
async fn serve(listener: TcpListener, routes: Arc<Routes>, counters: Arc<Counters>) -> Result<()> {
    spindle::task_group(move |tg| async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(connection) => connection,
                Err(e) => return Err::<(), Error>(e), // cancelled: the server stops
            };
            let (routes, counters) = (routes.clone(), counters.clone());
            tg.spawn(async move {
                match answer(&stream, &*routes, &counters).await {
                    Err(e) if e.is_cancelled() => Err(e),
                    // A client that went away: its business, not the server's.
                    _ => spindle::Ok(()),
                }
            })?;
        }
    })
    .await
}

/// Reads one request, waits for the path's delay and writes the response.
async fn answer(stream: &TcpStream, routes: &Routes, counters: &Counters) -> Result<()> {
    let (head, _) = read_head(stream).await?;
    counters.received.fetch_add(1, Ordering::SeqCst);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, routes(path)) {
        ("GET", Some(delay)) => {
            let now = counters.in_delay.fetch_add(1, Ordering::SeqCst) + 1;
            counters.max_in_delay.fetch_max(now, Ordering::SeqCst);
            let slept = spindle::sleep(delay).await;
            // Counted out before the response goes out, so a client that
            // sends its next request on receiving it is never counted twice.
            counters.in_delay.fetch_sub(1, Ordering::SeqCst);
            slept?;
            let body = format!("Data from {path} (after {:.2} s)", delay.as_secs_f64());
            ("200 OK", body)
        }
        ("GET", None) => ("404 Not Found", format!("no page at {path}")),
        _ => (
            "405 Method Not Allowed",
            format!("{method} is not supported"),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    counters.answered.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Reads up to the blank line ending an HTTP head; returns the head and the
/// bytes read after it.
async fn read_head(stream: &TcpStream) -> Result<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&data).into_owned(), rest));
        }
        if data.len() > MAX_HEAD {
            return Err(Error::msg("HTTP head too long"));
        }
        match stream.read(&mut chunk).await? {
            0 => {
                return Err(Error::msg(
                    "connection closed before the end of the HTTP head",
                ))
            }
            n => data.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A response: its status code and its body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET http://{addr}{path}`: connects, sends the request, reads the
/// response. A cancellation point all the way through; cancelled, the
/// connection is closed (the server sees the client hang up).
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let (head, mut body) = read_head(&stream).await?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::msg(format!("bad status line in {head:?}")))?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .ok_or_else(|| Error::msg("no Content-Length in the response"))?;
    if body.len() < length {
        let have = body.len();
        body.resize(length, 0);
        stream.read_exact(&mut body[have..]).await?;
    }
    body.truncate(length);
    let body = String::from_utf8(body).map_err(|_| Error::msg("the body is not UTF-8"))?;
    Ok(Response { status, body })
}
