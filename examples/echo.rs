//! An echo server and its clients on spindle's TCP sockets.
//!
//! ```text
//! cargo run --example echo                             # server + 20 clients, checked
//! cargo run --example echo -- server 127.0.0.1:7000    # only the server (until Ctrl-C)
//! cargo run --example echo -- client 127.0.0.1:7000    # sends the lines of stdin
//! ```

use spindle::net::{TcpListener, TcpStream};
use spindle::{Barrier, Error, Result};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: echo                 run a server and 20 clients, and check the echoes
       echo server ADDR     serve on ADDR (e.g. 127.0.0.1:7000) until Ctrl-C
       echo client ADDR     send each line of stdin to ADDR and print the echo";

const CLIENTS: usize = 20;
const LINES: usize = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args[..] {
        [] => spindle::run(demo()),
        ["server", addr] => spindle::run(server(addr.to_string())),
        ["client", addr] => spindle::run(client(addr.to_string())),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Echoes everything it reads until the client closes its side; returns
/// how many bytes.
async fn echo(stream: &TcpStream) -> Result<usize> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(total),
            n => {
                stream.write_all(&buf[..n]).await?;
                total += n;
            }
        }
    }
}

/// Accepts connections forever (until cancelled), each served by its own
/// task in a task group: cancelling the server cancels the connections.
async fn serve(listener: TcpListener) -> Result<()> {
    spindle::task_group(move |tg| async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(connection) => connection,
                Err(e) if e.is_cancelled() => return Err::<(), Error>(e),
                Err(e) => {
                    // Out of file descriptors, say: this accept only failed.
                    eprintln!("  server: accept failed: {e}");
                    spindle::sleep(Duration::from_millis(100)).await?;
                    continue;
                }
            };
            tg.spawn(async move {
                match echo(&stream).await {
                    Ok(bytes) => println!("  server: {peer} done, {bytes} bytes echoed"),
                    Err(e) if e.is_cancelled() => return Err(e),
                    // One client's trouble is not the server's.
                    Err(e) => println!("  server: {peer} failed: {e}"),
                }
                spindle::Ok(())
            })?;
        }
    })
    .await
}

async fn server(addr: String) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("echo server on {} (Ctrl-C to stop)", listener.local_addr()?);
    serve(listener).await
}

/// One client of the demonstration: connects, waits until every client
/// is connected, sends its lines one by one checking each echo, then
/// closes its side and expects the server to close too.
async fn check_client(addr: SocketAddr, id: usize, all_in: Arc<Barrier>) -> Result<()> {
    let stream = TcpStream::connect(addr).await?;
    all_in.wait().await?; // all CLIENTS connections are open at once
    let start = Instant::now();
    for n in 0..LINES {
        let line = format!("client {id}, line {n}: hello\n");
        stream.write_all(line.as_bytes()).await?;
        let mut echoed = vec![0; line.len()];
        stream.read_exact(&mut echoed).await?;
        if echoed != line.as_bytes() {
            let echoed = String::from_utf8_lossy(&echoed);
            return Err(Error::msg(format!("sent {line:?}, got {echoed:?} back")));
        }
    }
    stream.shutdown(Shutdown::Write)?;
    if stream.read(&mut [0u8; 1]).await? != 0 {
        return Err(Error::msg(format!(
            "client {id}: more bytes than were sent"
        )));
    }
    let took = start.elapsed().as_secs_f64() * 1e3;
    println!("  client {id}: {LINES} lines echoed back intact ({took:.2} ms)");
    Ok(())
}

/// A server on a free port and CLIENTS concurrent clients, then the server
/// is stopped.
async fn demo() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("== echo server on {addr}, {CLIENTS} clients of {LINES} lines each ==");
    let server = spindle::spawn(serve(listener));
    let start = Instant::now();
    let all_in = Arc::new(Barrier::new(CLIENTS)?);
    spindle::gather((0..CLIENTS).map(|id| check_client(addr, id, all_in.clone()))).await?;
    let took = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "== {CLIENTS} clients, {} lines checked in {took:.1} ms ==",
        CLIENTS * LINES
    );
    server.cancel();
    match server.await {
        Err(e) if e.is_cancelled() => println!("== server stopped =="),
        other => return other,
    }
    Ok(())
}

/// Sends each line of stdin (read on the blocking pool) and prints its echo.
async fn client(addr: String) -> Result<()> {
    let stream = TcpStream::connect(addr).await?;
    eprintln!(
        "connected to {}; type lines (Ctrl-D to end)",
        stream.peer_addr()?
    );
    loop {
        let line = spindle::to_thread(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await??;
        if line.is_empty() {
            break; // end of stdin
        }
        stream.write_all(line.as_bytes()).await?;
        let mut echoed = vec![0; line.len()];
        stream.read_exact(&mut echoed).await?;
        print!("{}", String::from_utf8_lossy(&echoed));
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(())
}
