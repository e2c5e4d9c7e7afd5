//! Networking on loopback: TCP with many clients, large transfers through
//! stream halves, half-close, refused and reset connections, readers
//! cancelled mid-read, running out of descriptors (EMFILE), an accept loop
//! facing misbehaving clients; UDP; Unix sockets; the futures-io traits
//! (and a cancellation travelling through them); bad input; and shutdown
//! with tasks waiting on I/O.

mod common;
#[path = "common/net.rs"]
mod net_util;

use common::{ms, rt, wait_done, within_limit};
use net_util::*;

use futures_util::future::join;
use futures_util::io::{copy, AsyncReadExt, AsyncWriteExt};
use spindle::io::AsyncFd;
use spindle::net::{
    lookup_host, OwnedReadHalf, OwnedWriteHalf, ReadHalf, TcpListener, TcpStream, UdpSocket,
    UnixListener, UnixStream, WriteHalf,
};
use spindle::{AnyTask, Barrier, ErrorKind, Promise, Runtime, Semaphore, Unhandled, UnhandledKind};
use std::future::Future;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

// -- stream sides, so one check works on every kind of half ----------------------

/// The reading side of a stream or of one of its halves.
trait ReadSide: Sync {
    fn read_some<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = spindle::Result<usize>> + Send + 'a;
    fn read_all<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = spindle::Result<()>> + Send + 'a;
}

/// The writing side of a stream or of one of its halves.
trait WriteSide: Sync {
    fn write_some<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Future<Output = spindle::Result<usize>> + Send + 'a;
    fn write_every<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Future<Output = spindle::Result<()>> + Send + 'a;
    fn half_close(&self) -> spindle::Result<()>;
}

macro_rules! read_side {
    ($($ty:ty),*) => {$(
        impl ReadSide for $ty {
            fn read_some<'a>(
                &'a self,
                buf: &'a mut [u8],
            ) -> impl Future<Output = spindle::Result<usize>> + Send + 'a {
                self.read(buf)
            }
            fn read_all<'a>(
                &'a self,
                buf: &'a mut [u8],
            ) -> impl Future<Output = spindle::Result<()>> + Send + 'a {
                self.read_exact(buf)
            }
        }
    )*};
}

read_side!(
    TcpStream,
    ReadHalf<'_, TcpStream>,
    OwnedReadHalf<TcpStream>,
    UnixStream
);

macro_rules! write_side {
    ($($ty:ty => |$s:ident| $close:expr),*) => {$(
        impl WriteSide for $ty {
            fn write_some<'a>(
                &'a self,
                buf: &'a [u8],
            ) -> impl Future<Output = spindle::Result<usize>> + Send + 'a {
                self.write(buf)
            }
            fn write_every<'a>(
                &'a self,
                buf: &'a [u8],
            ) -> impl Future<Output = spindle::Result<()>> + Send + 'a {
                self.write_all(buf)
            }
            fn half_close(&self) -> spindle::Result<()> {
                let $s = self;
                $close
            }
        }
    )*};
}

write_side!(
    TcpStream => |s| s.shutdown(Shutdown::Write),
    WriteHalf<'_, TcpStream> => |s| s.shutdown(),
    OwnedWriteHalf<TcpStream> => |s| s.shutdown()
);

/// Sends `data` in writes of random sizes (some `write`, some
/// `write_all`), then half-closes.
async fn send_chunked(writer: &impl WriteSide, data: &[u8], seed: u64) -> spindle::Result<()> {
    let mut rng = Rng::new(seed);
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + rng.range(1, 200_000)).min(data.len());
        if rng.next_u64() % 2 == 0 {
            writer.write_every(&data[pos..end]).await?;
            pos = end;
        } else {
            let n = writer.write_some(&data[pos..end]).await?;
            assert!(n > 0, "a write of {} bytes wrote nothing", end - pos);
            pos += n;
        }
    }
    writer.half_close()
}

/// Reads to end of stream in reads of random sizes (some `read`, some
/// `read_exact`) and checks every byte against `expected`.
async fn receive_checked(
    reader: &impl ReadSide,
    expected: &[u8],
    seed: u64,
) -> spindle::Result<()> {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0;
    loop {
        let want = rng.range(1, buf.len());
        let n = if rng.next_u64() % 4 == 0 && pos + want <= expected.len() {
            reader.read_all(&mut buf[..want]).await?;
            want
        } else {
            reader.read_some(&mut buf[..want]).await?
        };
        if n == 0 {
            break;
        }
        assert!(
            pos + n <= expected.len(),
            "received more than the {} bytes sent",
            expected.len()
        );
        if buf[..n] != expected[pos..pos + n] {
            let at = first_difference(&buf[..n], &expected[pos..pos + n]).unwrap();
            panic!("received byte {} differs from the one sent", pos + at);
        }
        pos += n;
    }
    assert_eq!(
        pos,
        expected.len(),
        "end of stream before every byte arrived"
    );
    Ok(())
}

/// Reads until end of stream.
async fn read_to_end(reader: &impl ReadSide) -> spindle::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read_some(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

// -- many clients ----------------------------------------------------------------

const CLIENTS: usize = 200;
const MESSAGES: usize = 8;

fn message(client: usize, i: usize) -> Vec<u8> {
    let len = 1 + (client * 7919 + i * 104_729) % 4000;
    pattern((client * MESSAGES + i) as u64 + 1000, len)
}

/// 200 clients connect at once (all 200 connections are open before any
/// sends); each sends 8 messages (1 to 4000 bytes)
/// one after the other and reads each echo back whole before the next; every
/// byte is compared; each then half-closes and sees the server's end of
/// stream; the server's byte count equals what the clients sent.
#[test]
fn two_hundred_concurrent_clients_get_every_byte_of_their_messages_echoed() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (listener, addr) = listener().await?;
                // The listen backlog is 128: more handshakes completed and not
                // yet accepted make the kernel drop SYNs, which the clients
                // resend after a second. So at most 64 connections wait to be
                // accepted at a time; all 200 are open together all the same.
                let backlog = Arc::new(Semaphore::new(64));
                let b = backlog.clone();
                let all_connected = Arc::new(Barrier::new(CLIENTS)?);
                let server = spindle::spawn(async move {
                    let mut handlers = Vec::new();
                    for _ in 0..CLIENTS {
                        let (stream, peer) = listener.accept().await?;
                        b.release()?;
                        assert_eq!(stream.peer_addr()?, peer);
                        handlers.push(spindle::spawn(echo(stream)));
                    }
                    let mut total = 0;
                    for handler in handlers {
                        total += handler.await?;
                    }
                    spindle::Ok(total)
                });
                let clients: Vec<_> = (0..CLIENTS)
                    .map(|c| {
                        let (backlog, all_connected) = (backlog.clone(), all_connected.clone());
                        spindle::spawn(async move {
                            backlog.acquire().await?.forget();
                            let stream = TcpStream::connect(addr).await?;
                            all_connected.wait().await?;
                            stream.set_nodelay(true)?;
                            assert!(stream.nodelay()?);
                            assert_eq!(stream.peer_addr()?, addr);
                            let mut sent = 0u64;
                            for i in 0..MESSAGES {
                                let msg = message(c, i);
                                stream.write_all(&msg).await?;
                                let mut back = vec![0u8; msg.len()];
                                stream.read_exact(&mut back).await?;
                                assert!(
                                    back == msg,
                                    "client {c} message {i}: echo differs at byte {:?}",
                                    first_difference(&back, &msg)
                                );
                                sent += msg.len() as u64;
                            }
                            stream.shutdown(Shutdown::Write)?;
                            let mut rest = [0u8; 1];
                            assert_eq!(
                                stream.read(&mut rest).await?,
                                0,
                                "client {c}: no extra bytes"
                            );
                            spindle::Ok(sent)
                        })
                    })
                    .collect();
                let mut expected = 0;
                for client in clients {
                    expected += client.await?;
                }
                assert_eq!(server.await?, expected);
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- large transfers through halves ------------------------------------------------

const BIG: usize = 16 << 20;

/// 16 MiB go each way at the same time. The server moves its stream's
/// `into_split` halves into two tasks (one sends, one receives) and
/// reunites them afterwards; the client uses the borrowed `split` halves
/// concurrently in one task. Writes and reads have random sizes; every byte
/// is compared with what was sent.
#[test]
fn sixteen_mib_each_way_at_once_through_split_and_into_split_halves_arrive_intact() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let up = Arc::new(pattern(1, BIG));
                let down = Arc::new(pattern(2, BIG));
                let (listener, addr) = listener().await?;
                let (up_s, down_s) = (up.clone(), down.clone());
                let server = spindle::spawn(async move {
                    let (stream, _) = listener.accept().await?;
                    let local = stream.local_addr()?;
                    let (reader, writer) = stream.into_split();
                    let receiving = spindle::spawn(async move {
                        receive_checked(&reader, &up_s, 11).await?;
                        spindle::Ok(reader)
                    });
                    let sending = spindle::spawn(async move {
                        send_chunked(&writer, &down_s, 12).await?;
                        spindle::Ok(writer)
                    });
                    let (reader, writer) = (receiving.await?, sending.await?);
                    let stream = reader.reunite(writer).expect("halves of one stream");
                    assert_eq!(stream.local_addr()?, local);
                    spindle::Ok(())
                });
                let stream = TcpStream::connect(addr).await?;
                // (Called by path: with futures-util's `AsyncReadExt` in scope,
                // `stream.split()` would pick its by-value `split`.)
                let (reader, writer) = TcpStream::split(&stream);
                let (sent, received) = join(
                    send_chunked(&writer, &up, 21),
                    receive_checked(&reader, &down, 22),
                )
                .await;
                sent?;
                received?;
                server.await
            })
            .unwrap()
    })
}

/// Halves of two different streams do not reunite; both come back intact.
#[test]
fn halves_of_different_streams_do_not_reunite() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (a, _a_peer) = tcp_pair().await?;
                let (b, b_peer) = tcp_pair().await?;
                let (a_read, _a_write) = a.into_split();
                let (_b_read, b_write) = b.into_split();
                let spindle::net::ReuniteError(a_read, b_write) =
                    a_read.reunite(b_write).unwrap_err();
                b_write.write_all(b"still works").await?;
                let mut buf = [0u8; 11];
                b_peer.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"still works");
                drop(a_read);
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- half-close ----------------------------------------------------------------------

/// The client sends 300 000 bytes and half-closes; its own writes now fail.
/// The server reads to end of stream (again at a second read: it is final),
/// then writes a 1 MiB reply that the client reads completely.
#[test]
fn after_the_client_half_closes_the_server_reads_to_eof_and_its_reply_still_arrives() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let request = Arc::new(pattern(3, 300_000));
                let reply = Arc::new(pattern(4, 1 << 20));
                let (listener, addr) = listener().await?;
                let (req, rep) = (request.clone(), reply.clone());
                let server = spindle::spawn(async move {
                    let (stream, _) = listener.accept().await?;
                    let got = read_to_end(&stream).await?;
                    assert!(got == *req, "the request arrived intact");
                    let mut buf = [0u8; 16];
                    assert_eq!(stream.read(&mut buf).await?, 0, "end of stream is final");
                    stream.write_all(&rep).await?;
                    spindle::Ok(got.len())
                });
                let client = TcpStream::connect(addr).await?;
                client.write_all(&request).await?;
                client.shutdown(Shutdown::Write)?;
                let err = client.write(b"late").await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::BrokenPipe);
                let got = read_to_end(&client).await?;
                assert_eq!(got.len(), reply.len());
                assert!(
                    got == *reply,
                    "the reply after the half-close arrived intact"
                );
                assert_eq!(server.await?, request.len());
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// Small messages read into large buffers: every read returns less than its
/// buffer, which tells the stream that the socket is drained, so its next
/// read waits for the driver instead of asking the kernel again. The peer's
/// next bytes must still wake that reader whether they follow at once,
/// after a pause, or in two pieces, and the end of stream after the last
/// message must still be seen; through `read` on the server and through the
/// futures-io reader on the client.
#[test]
fn reads_shorter_than_their_buffer_still_wake_for_the_next_bytes_and_the_end() {
    const MESSAGES: usize = 300;
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (listener, addr) = listener().await?;
                let server = spindle::spawn(async move {
                    let (stream, _) = listener.accept().await?;
                    let mut buf = vec![0u8; 64 << 10];
                    let mut echoed = 0;
                    loop {
                        let n = stream.read(&mut buf).await?;
                        if n == 0 {
                            return spindle::Ok(echoed);
                        }
                        assert!(n < buf.len(), "a short message fills less than the buffer");
                        stream.write_all(&buf[..n]).await?;
                        echoed += n;
                    }
                });
                let client = TcpStream::connect(addr).await?;
                let mut sent = 0;
                for i in 0..MESSAGES {
                    let message = pattern(i as u64, 1 + i % 200);
                    let split = message.len() / 2;
                    match i % 4 {
                        0 => client.write_all(&message).await?,
                        1 => {
                            spindle::sleep(ms(1)).await?;
                            client.write_all(&message).await?;
                        }
                        _ => {
                            client.write_all(&message[..split]).await?;
                            if i % 4 == 3 {
                                spindle::sleep(ms(1)).await?;
                            }
                            client.write_all(&message[split..]).await?;
                        }
                    }
                    sent += message.len();
                    let mut echo = Vec::new();
                    let mut buf = vec![0u8; 64 << 10];
                    while echo.len() < message.len() {
                        let n = AsyncReadExt::read(&mut &client, &mut buf).await?;
                        assert!(n > 0, "message {i}: end of stream before the echo");
                        echo.extend_from_slice(&buf[..n]);
                    }
                    assert!(echo == message, "message {i} came back intact");
                }
                client.write_all(b"last").await?;
                client.shutdown(Shutdown::Write)?;
                let mut last = [0u8; 16];
                let mut got = 0;
                loop {
                    let n = client.read(&mut last[got..]).await?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                assert_eq!(&last[..got], b"last");
                assert_eq!(
                    server.await?,
                    sent + 4,
                    "the server saw every byte, then the end"
                );
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- refused and reset -----------------------------------------------------------------

/// Connecting to a port where nothing listens is an `Io` error with
/// `ConnectionRefused`; given a list of addresses, `connect` moves past the
/// refused one to one that listens.
#[test]
fn connecting_where_nothing_listens_is_refused_with_an_io_error() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let nobody = unlistened_port();
                let err = TcpStream::connect(nobody.addr).await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::ConnectionRefused);
                let err = TcpStream::connect(nobody.addr.to_string())
                    .await
                    .unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::ConnectionRefused);

                let (listener, addr) = listener().await?;
                let addrs = [nobody.addr, addr];
                let stream = TcpStream::connect(&addrs[..]).await?;
                assert_eq!(stream.peer_addr()?, addr);
                let (accepted, _) = listener.accept().await?;
                assert_eq!(accepted.peer_addr()?, stream.local_addr()?);
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// The peer closes with `SO_LINGER` 0 (a reset). A task blocked in `read`
/// wakes with `ConnectionReset`, and a later write fails with an `Io` error;
/// a task blocked in `write` on a full buffer wakes with `ConnectionReset`
/// or `BrokenPipe`. No panic, no hang.
#[test]
fn a_peer_resetting_the_connection_fails_the_blocked_reader_and_writer_with_io_errors() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                // A reader blocked in read.
                let (client, server) = tcp_pair().await?;
                let client = Arc::new(client);
                let started = Promise::<()>::new();
                let (c, s) = (client.clone(), started.clone());
                let reader = spindle::spawn(async move {
                    s.set_result(())?;
                    let mut buf = [0u8; 64];
                    spindle::Ok(c.read(&mut buf).await)
                });
                started.await?;
                spindle::sleep(ms(20)).await?;
                set_linger_zero(server.as_raw_fd());
                drop(server);
                let err = reader.await?.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::ConnectionReset);
                let err = client.write(b"after the reset").await.unwrap_err();
                let kind = io_kind(&err);
                assert!(
                    matches!(
                        kind,
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "write after a reset: {err:?}"
                );

                // A writer blocked on a full buffer.
                let (client, server) = tcp_pair().await?;
                let writer = spindle::spawn(async move {
                    let chunk = vec![7u8; 1 << 20];
                    let mut sent = 0usize;
                    loop {
                        match client.write(&chunk).await {
                            Ok(n) => sent += n,
                            Err(e) => return spindle::Ok((sent, e)),
                        }
                    }
                });
                eventually(
                    "the writer filled the buffers",
                    Duration::from_secs(10),
                    || unread_bytes(server.as_raw_fd()) > 0,
                )
                .await?;
                spindle::sleep(ms(20)).await?;
                set_linger_zero(server.as_raw_fd());
                drop(server);
                let (sent, err) = writer.await?;
                assert!(sent > 0);
                let kind = io_kind(&err);
                assert!(
                    matches!(
                        kind,
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "blocked write after a reset: {err:?}"
                );
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- readers cancelled mid-read ----------------------------------------------------------

/// A task blocked in `read` with nothing to read is cancelled: it ends
/// cancelled with the message, and the bytes written afterwards are all
/// there for the next reader.
#[test]
fn a_reader_cancelled_while_blocked_in_read_loses_nothing_written_later() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (client, server) = tcp_pair().await?;
                let server = Arc::new(server);
                let started = Promise::<()>::new();
                let (s, st) = (server.clone(), started.clone());
                let reader = spindle::spawn(async move {
                    st.set_result(())?;
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await?;
                    spindle::Ok(buf[..n].to_vec())
                });
                started.await?;
                spindle::sleep(ms(20)).await?;
                reader.cancel_with("stop reading");
                wait_done(&reader).await?;
                assert!(reader.cancelled());
                let err = reader.clone().await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("stop reading"));

                client.write_all(b"written later").await?;
                let mut buf = [0u8; 13];
                server.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"written later");
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// A task in `read_exact` of 10 bytes has taken the 4 that arrived (the
/// socket's queue is empty again) and waits for more when it is cancelled.
/// The 4 bytes are given back: the next `read_exact` returns them followed
/// by the ones written later. The same through an owned read half, and
/// for a `read_exact` that a timeout scope ends.
#[test]
fn a_read_exact_cancelled_part_way_gives_back_the_bytes_it_had_taken() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                // On the stream.
                let (client, server) = tcp_pair().await?;
                let server = Arc::new(server);
                client.write_all(b"abcd").await?;
                eventually("4 bytes queued", Duration::from_secs(10), || {
                    unread_bytes(server.as_raw_fd()) == 4
                })
                .await?;
                let s = server.clone();
                let reader = spindle::spawn(async move {
                    let mut buf = [0u8; 10];
                    s.read_exact(&mut buf).await?;
                    spindle::Ok(buf)
                });
                eventually(
                    "the reader took the 4 bytes",
                    Duration::from_secs(10),
                    || unread_bytes(server.as_raw_fd()) == 0,
                )
                .await?;
                reader.cancel();
                wait_done(&reader).await?;
                assert!(reader.cancelled(), "ended {:?}", reader.state());
                client.write_all(b"efghijKLMNOP").await?;
                let mut buf = [0u8; 10];
                server.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"abcdefghij");
                let mut rest = [0u8; 6];
                server.read_exact(&mut rest).await?;
                assert_eq!(&rest, b"KLMNOP");

                // On an owned read half; a plain `read` gets the given-back bytes.
                let (client, server) = tcp_pair().await?;
                let server_fd = server.as_raw_fd();
                let (read_half, _write_half) = server.into_split();
                let read_half = Arc::new(read_half);
                client.write_all(b"xyz").await?;
                eventually("3 bytes queued", Duration::from_secs(10), || {
                    unread_bytes(server_fd) == 3
                })
                .await?;
                let h = read_half.clone();
                let reader = spindle::spawn(async move {
                    let mut buf = [0u8; 8];
                    h.read_exact(&mut buf).await?;
                    spindle::Ok(buf)
                });
                eventually(
                    "the reader took the 3 bytes",
                    Duration::from_secs(10),
                    || unread_bytes(server_fd) == 0,
                )
                .await?;
                reader.cancel();
                wait_done(&reader).await?;
                assert!(reader.cancelled());
                client.write_all(b"!").await?;
                let mut buf = [0u8; 4];
                read_half.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"xyz!");

                // A `read_exact` that a timeout scope gives up on.
                client.write_all(b"12345").await?;
                let mut buf = [0u8; 8];
                let err = spindle::timeout(ms(30), read_half.read_exact(&mut buf))
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                client.write_all(b"678").await?;
                read_half.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"12345678");
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// A writer sends 1 MB slowly (random writes, yields and sleeps); reader
/// tasks, alternately looping on `read_exact` and on `read`, are each
/// cancelled after a random short time and replaced. Everything the readers
/// got, concatenated, is exactly what was sent: no byte lost, none doubled.
#[test]
fn readers_cancelled_at_random_points_lose_and_duplicate_no_byte_of_a_stream() {
    const TOTAL: usize = 1_000_000;
    within_limit(|| {
        rt(2)
            .block_on(async {
                let data = Arc::new(pattern(7, TOTAL));
                let (client, server) = tcp_pair().await?;
                let server = Arc::new(server);
                let d = data.clone();
                let writer = spindle::spawn(async move {
                    let mut rng = Rng::new(70);
                    let mut pos = 0;
                    let mut writes = 0;
                    while pos < TOTAL {
                        let end = (pos + rng.range(1, 8000)).min(TOTAL);
                        pos += client.write(&d[pos..end]).await?;
                        writes += 1;
                        if writes % 4 == 0 {
                            spindle::sleep(ms(1)).await?;
                        } else {
                            spindle::yield_now().await?;
                        }
                    }
                    client.shutdown(Shutdown::Write)?;
                    spindle::Ok(client)
                });
                let received = Arc::new(Mutex::new(Vec::with_capacity(TOTAL)));
                let mut rng = Rng::new(71);
                let (mut rounds, mut cancelled) = (0usize, 0usize);
                while received.lock().unwrap().len() < TOTAL {
                    rounds += 1;
                    let exact = rounds % 2 == 0;
                    let (s, r) = (server.clone(), received.clone());
                    let reader = spindle::spawn(async move {
                        let mut buf = vec![0u8; 3000];
                        loop {
                            if exact {
                                let want = (TOTAL - r.lock().unwrap().len()).min(2999);
                                if want == 0 {
                                    return spindle::Ok(());
                                }
                                s.read_exact(&mut buf[..want]).await?;
                                r.lock().unwrap().extend_from_slice(&buf[..want]);
                            } else {
                                let n = s.read(&mut buf).await?;
                                if n == 0 {
                                    return spindle::Ok(());
                                }
                                r.lock().unwrap().extend_from_slice(&buf[..n]);
                            }
                        }
                    });
                    match rng.range(0, 3) {
                        0 => spindle::yield_now().await?,
                        n => spindle::sleep(ms(n as u64 - 1)).await?,
                    }
                    reader.cancel();
                    wait_done(&reader).await?;
                    if reader.cancelled() {
                        cancelled += 1;
                    } else {
                        reader.clone().await?;
                    }
                }
                let client = writer.await?;
                let got = received.lock().unwrap().clone();
                assert_eq!(got.len(), TOTAL);
                assert!(
                    got == *data,
                    "the readers' bytes differ from the stream at {:?}",
                    first_difference(&got, &data)
                );
                let mut buf = [0u8; 8];
                assert_eq!(server.read(&mut buf).await?, 0, "nothing beyond the stream");
                assert!(cancelled >= 1, "{rounds} rounds, none cancelled");
                println!("{rounds} reader rounds, {cancelled} cancelled");
                drop(client);
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// A task cancelled while waiting in `accept` takes no connection: the
/// next `accept` gets the client that connects afterwards. Likewise a
/// cancelled `recv_from`, and one that a timeout gives up on, take no
/// datagram.
#[test]
fn cancelled_accept_and_recv_from_lose_no_connection_or_datagram() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (listener, addr) = listener().await?;
                let listener = Arc::new(listener);
                let started = Promise::<()>::new();
                let (l, st) = (listener.clone(), started.clone());
                let acceptor = spindle::spawn(async move {
                    st.set_result(())?;
                    let (stream, _) = l.accept().await?;
                    spindle::Ok(stream.peer_addr()?)
                });
                started.await?;
                spindle::sleep(ms(20)).await?;
                acceptor.cancel();
                wait_done(&acceptor).await?;
                assert!(acceptor.cancelled());
                let client = TcpStream::connect(addr).await?;
                let (_accepted, peer) = listener.accept().await?;
                assert_eq!(peer, client.local_addr()?);

                let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
                let sender = UdpSocket::bind("127.0.0.1:0").await?;
                let started = Promise::<()>::new();
                let (s, st) = (socket.clone(), started.clone());
                let receiver = spindle::spawn(async move {
                    st.set_result(())?;
                    let mut buf = [0u8; 16];
                    let (n, _) = s.recv_from(&mut buf).await?;
                    spindle::Ok(n)
                });
                started.await?;
                spindle::sleep(ms(20)).await?;
                receiver.cancel();
                wait_done(&receiver).await?;
                assert!(receiver.cancelled());
                let mut buf = [0u8; 16];
                let err = spindle::timeout(ms(20), socket.recv_from(&mut buf))
                    .await
                    .unwrap_err();
                assert!(err.is_timeout());
                sender.send_to(b"kept", socket.local_addr()?).await?;
                let (n, from) = socket.recv_from(&mut buf).await?;
                assert_eq!((&buf[..n], from), (&b"kept"[..], sender.local_addr()?));
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// Four tasks read from one shared stream at once while a writer sends
/// 4 MiB in random pieces: together they receive every byte exactly once
/// (the byte counts and the histogram of byte values match), and all of
/// them see the end of stream.
#[test]
fn readers_sharing_one_stream_receive_every_byte_exactly_once() {
    const TOTAL: usize = 4 << 20;
    within_limit(|| {
        rt(2)
            .block_on(async {
                let data = Arc::new(pattern(9, TOTAL));
                let (client, server) = tcp_pair().await?;
                let server = Arc::new(server);
                let readers: Vec<_> = (0..4)
                    .map(|i| {
                        let s = server.clone();
                        spindle::spawn(async move {
                            let mut histogram = vec![0u64; 256];
                            let mut buf = vec![0u8; 1000 + 3000 * i];
                            loop {
                                if i % 2 == 1 {
                                    s.readable().await?;
                                }
                                let n = s.read(&mut buf).await?;
                                if n == 0 {
                                    return spindle::Ok(histogram);
                                }
                                for &byte in &buf[..n] {
                                    histogram[byte as usize] += 1;
                                }
                            }
                        })
                    })
                    .collect();
                let mut rng = Rng::new(90);
                let mut pos = 0;
                while pos < TOTAL {
                    let end = (pos + rng.range(1, 100_000)).min(TOTAL);
                    client.write_all(&data[pos..end]).await?;
                    pos = end;
                    if rng.next_u64() % 8 == 0 {
                        spindle::sleep(ms(1)).await?;
                    }
                }
                client.shutdown(Shutdown::Write)?;
                let mut total = vec![0u64; 256];
                for reader in readers {
                    for (t, n) in total.iter_mut().zip(reader.await?) {
                        *t += n;
                    }
                }
                let mut expected = vec![0u64; 256];
                for &byte in data.iter() {
                    expected[byte as usize] += 1;
                }
                assert_eq!(total.iter().sum::<u64>(), TOTAL as u64);
                assert!(total == expected, "the byte histograms differ");
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- running out of descriptors -------------------------------------------------------------

/// In a child process (the limit is per process): with `RLIMIT_NOFILE`
/// lowered and every descriptor taken, clients connect (sockets made
/// earlier); `accept` fails with an `Io` error `EMFILE` again and again while
/// the accept loop sleeps briefly and retries; `connect` fails the same way.
/// Once descriptors are freed, the pending clients are accepted and served,
/// and so are new ones.
#[test]
fn accept_fails_with_emfile_the_loop_survives_and_serves_everyone_once_descriptors_are_freed() {
    if !in_child() {
        run_in_child(
            "accept_fails_with_emfile_the_loop_survives_and_serves_everyone_once_descriptors_are_freed",
        );
        return;
    }
    within_limit(|| {
        rt(2)
            .block_on(async {
                const PENDING: usize = 4;
                let (listener, addr) = listener().await?;
                let emfile = Arc::new(AtomicUsize::new(0));
                let e = emfile.clone();
                let server = spindle::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => drop(spindle::spawn(echo(stream))),
                            Err(err) if os_error(&err) == Some(libc::EMFILE) => {
                                e.fetch_add(1, Ordering::SeqCst);
                                spindle::sleep(ms(5)).await?;
                            }
                            Err(err) => return Err::<(), _>(err),
                        }
                    }
                });
                let sockets: Vec<_> = (0..PENDING).map(|_| unconnected_tcp_socket()).collect();
                set_nofile_limit(256);
                let fillers = exhaust_descriptors();

                let mut pending = Vec::new();
                for (i, socket) in sockets.into_iter().enumerate() {
                    let stream = TcpStream::from_std(connect_blocking(socket, addr))?;
                    stream.write_all(format!("pending {i}").as_bytes()).await?;
                    pending.push(stream);
                }
                eventually(
                    "accept failing with EMFILE three times",
                    Duration::from_secs(10),
                    || emfile.load(Ordering::SeqCst) >= 3,
                )
                .await?;
                let err = TcpStream::connect(addr).await.unwrap_err();
                assert_eq!(os_error(&err), Some(libc::EMFILE), "{err:?}");
                assert!(!server.done(), "the accept loop is still running");

                let failures = emfile.load(Ordering::SeqCst);
                drop(fillers);
                for (i, stream) in pending.iter().enumerate() {
                    let expected = format!("pending {i}");
                    let mut buf = vec![0u8; expected.len()];
                    stream.read_exact(&mut buf).await?;
                    assert_eq!(buf, expected.as_bytes());
                }
                for i in 0..4 {
                    let stream = TcpStream::connect(addr).await?;
                    let msg = format!("new {i}");
                    stream.write_all(msg.as_bytes()).await?;
                    stream.shutdown(Shutdown::Write)?;
                    assert_eq!(read_to_end(&stream).await?, msg.as_bytes());
                }
                assert!(!server.done());
                println!(
                    "{failures} EMFILE failures before the descriptors were freed, {} after",
                    emfile.load(Ordering::SeqCst) - failures
                );
                server.cancel();
                spindle::Ok(())
            })
            .unwrap()
    });
    println!("{CHILD_DONE}");
}

// -- an accept loop facing misbehaving clients --------------------------------------------

const MAX_FRAME: usize = 64 * 1024;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Serves length-prefixed frames (echoing each) until a clean end of stream
/// between frames; returns the number of frames.
async fn serve_frames(stream: &TcpStream) -> spindle::Result<usize> {
    let mut frames = 0;
    loop {
        let mut header = [0u8; 4];
        if stream.read(&mut header[..1]).await? == 0 {
            return Ok(frames);
        }
        stream.read_exact(&mut header[1..]).await?;
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long").into());
        }
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await?;
        stream.write_all(&frame(&payload)).await?;
        frames += 1;
    }
}

/// Sends one frame and checks the echo.
async fn exchange_frame(stream: &TcpStream, payload: &[u8]) -> spindle::Result<()> {
    stream.write_all(&frame(payload)).await?;
    let mut back = vec![0u8; 4 + payload.len()];
    stream.read_exact(&mut back).await?;
    assert!(back == frame(payload), "the frame came back intact");
    Ok(())
}

/// One wave of clients that misbehave, 30 in all: 10 connect and close at
/// once, 5 send garbage, 5 reset mid-frame, 5 half-close mid-frame, and 5
/// half-close after a whole frame (well-behaved: they get the echo).
async fn misbehave(addr: SocketAddr) -> spindle::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(spindle::spawn(async move {
            drop(TcpStream::connect(addr).await?);
            spindle::Ok(())
        }));
    }
    for i in 0..5 {
        tasks.push(spindle::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            let mut garbage = pattern(500 + i, 64);
            garbage[0] = 0xFF;
            stream.write_all(&garbage).await?;
            let mut buf = [0u8; 64];
            match stream.read(&mut buf).await {
                Ok(n) => assert_eq!(n, 0, "no reply to garbage"),
                Err(e) => assert_eq!(io_kind(&e), io::ErrorKind::ConnectionReset),
            }
            spindle::Ok(())
        }));
    }
    for _ in 0..5 {
        tasks.push(spindle::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.write_all(&frame(&[1u8; 100])[..14]).await?;
            set_linger_zero(stream.as_raw_fd());
            drop(stream);
            spindle::Ok(())
        }));
    }
    for _ in 0..5 {
        tasks.push(spindle::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.write_all(&frame(&[2u8; 100])[..14]).await?;
            stream.shutdown(Shutdown::Write)?;
            let mut buf = [0u8; 8];
            assert_eq!(stream.read(&mut buf).await?, 0, "the server gives up");
            spindle::Ok(())
        }));
    }
    for i in 0..5 {
        tasks.push(spindle::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            let payload = pattern(600 + i, 1000);
            stream.write_all(&frame(&payload)).await?;
            stream.shutdown(Shutdown::Write)?;
            assert_eq!(read_to_end(&stream).await?, frame(&payload));
            spindle::Ok(())
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// A well-behaved client: 5 frames of random sizes, each echo checked.
async fn behave(addr: SocketAddr, seed: u64) -> spindle::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let mut rng = Rng::new(seed);
    for i in 0..5 {
        let payload = pattern(seed * 10 + i, rng.range(1, 20_000));
        exchange_frame(&stream, &payload).await?;
    }
    Ok(())
}

type Outcome = Result<usize, (ErrorKind, Option<io::ErrorKind>)>;

/// An accept loop serving frames keeps going through two waves of
/// misbehaving clients (closing at once, garbage, resets, half-closes) and
/// an idle client; good clients during and after them are served
/// correctly. Every connection's handler ends with success or an `Io`
/// error (none panics), and the counts match what each client did.
#[test]
fn an_accept_loop_survives_misbehaving_clients_and_keeps_serving_good_ones() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (listener, addr) = listener().await?;
                let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
                let accept_errors: Arc<Mutex<Vec<spindle::Error>>> = Arc::default();
                let (o, ae) = (outcomes.clone(), accept_errors.clone());
                let server = spindle::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                let o = o.clone();
                                drop(spindle::spawn(async move {
                                    let outcome = serve_frames(&stream)
                                        .await
                                        .map_err(|e| (e.kind(), e.io_error().map(|e| e.kind())));
                                    o.lock().unwrap().push(outcome);
                                    spindle::Ok(())
                                }));
                            }
                            Err(e) if e.is_cancelled() => return Err::<(), _>(e),
                            Err(e) => ae.lock().unwrap().push(e),
                        }
                    }
                });
                let ended = || outcomes.lock().unwrap().len() + accept_errors.lock().unwrap().len();

                misbehave(addr).await?;
                let idle = TcpStream::connect(addr).await?;
                eventually(
                    "the first wave's handlers end",
                    Duration::from_secs(10),
                    || ended() == 30,
                )
                .await?;

                let good: Vec<_> = (0..20).map(|i| spindle::spawn(behave(addr, i))).collect();
                misbehave(addr).await?;
                for task in good {
                    task.await?;
                }
                drop(idle);
                eventually("every handler ends", Duration::from_secs(10), || {
                    ended() == 81
                })
                .await?;
                assert!(!server.done(), "the accept loop is still running");
                behave(addr, 99).await?;
                eventually("the last handler ends", Duration::from_secs(10), || {
                    ended() == 82
                })
                .await?;

                let outcomes = outcomes.lock().unwrap().clone();
                let count = |n: usize| outcomes.iter().filter(|o| **o == Ok(n)).count();
                assert_eq!(count(5), 21, "good clients: {outcomes:?}");
                assert_eq!(count(1), 10, "whole frame, then half-close: {outcomes:?}");
                assert_eq!(
                    count(0),
                    21,
                    "closed at once, and the idle one: {outcomes:?}"
                );
                let accept_errors = accept_errors.lock().unwrap().clone();
                for error in &accept_errors {
                    assert_eq!(error.kind(), ErrorKind::Io, "accept failed: {error:?}");
                }
                let failed: Vec<_> = outcomes.iter().filter_map(|o| o.err()).collect();
                assert_eq!(failed.len() + accept_errors.len(), 30, "{outcomes:?}");
                for (kind, io_kind) in failed {
                    assert_eq!(kind, ErrorKind::Io);
                    assert!(
                        matches!(
                            io_kind,
                            Some(
                                io::ErrorKind::InvalidData
                                    | io::ErrorKind::UnexpectedEof
                                    | io::ErrorKind::ConnectionReset
                            )
                        ),
                        "handler failed with {io_kind:?}"
                    );
                }
                server.cancel();
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- UDP ----------------------------------------------------------------------------------------

/// `send_to`/`recv_from` between two sockets (20 round trips, sender
/// addresses checked), a datagram cut to the buffer, `connect`/`send`/
/// `recv` (a connected socket ignores other senders), and `ConnectionRefused`
/// on a connected socket whose peer port is closed.
#[test]
fn udp_datagrams_go_both_ways_with_and_without_connect() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let a = UdpSocket::bind("127.0.0.1:0").await?;
                let b = UdpSocket::bind(("127.0.0.1", 0)).await?;
                let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
                let mut buf = [0u8; 2048];
                for i in 0..20u64 {
                    let msg = pattern(i, 1 + i as usize * 50);
                    assert_eq!(a.send_to(&msg, b_addr).await?, msg.len());
                    let (n, from) = b.recv_from(&mut buf).await?;
                    assert_eq!((&buf[..n], from), (&msg[..], a_addr));
                    let reply: Vec<u8> = msg.iter().rev().copied().collect();
                    b.send_to(&reply, from.to_string()).await?;
                    let (n, from) = a.recv_from(&mut buf).await?;
                    assert_eq!((&buf[..n], from), (&reply[..], b_addr));
                }

                // Cut to the buffer; the rest of that datagram is gone.
                a.send_to(&[9u8; 100], b_addr).await?;
                a.send_to(b"next", b_addr).await?;
                let mut small = [0u8; 10];
                assert_eq!(b.recv_from(&mut small).await?, (10, a_addr));
                assert_eq!(small, [9u8; 10]);
                let (n, _) = b.recv_from(&mut buf).await?;
                assert_eq!(&buf[..n], b"next");

                // Connected sockets.
                let c = UdpSocket::bind("127.0.0.1:0").await?;
                c.connect(b_addr).await?;
                assert_eq!(c.peer_addr()?, b_addr);
                b.connect(c.local_addr()?).await?;
                a.send_to(b"stray", c.local_addr()?).await?;
                b.send(b"from b").await?;
                let n = c.recv(&mut buf).await?;
                assert_eq!(
                    &buf[..n],
                    b"from b",
                    "a connected socket only hears its peer"
                );
                c.send(b"from c").await?;
                let n = b.recv(&mut buf).await?;
                assert_eq!(&buf[..n], b"from c");

                // A connected socket learns that its peer's port is closed.
                let closed = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
                let d = UdpSocket::bind("127.0.0.1:0").await?;
                d.connect(closed).await?;
                d.send(b"anyone?").await?;
                let err = spindle::timeout(Duration::from_secs(10), d.recv(&mut buf))
                    .await
                    .expect_err("an ICMP port-unreachable error");
                assert_eq!(io_kind(&err), io::ErrorKind::ConnectionRefused);
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- Unix sockets ---------------------------------------------------------------------------------

/// A Unix listener on a path serves three clients (each sends, half-closes
/// and gets its bytes back reversed); binding the path twice and connecting
/// to a missing path are `Io` errors; `UnixStream::pair` carries data both
/// ways, its halves reunite, and dropping one end gives the other end of
/// stream.
#[test]
fn unix_listener_streams_and_pairs_carry_data_and_report_errors() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let path = socket_path("echo");
                let listener = UnixListener::bind(&path)?;
                assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
                let err = UnixListener::bind(&path).unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::AddrInUse);
                let missing = socket_path("missing");
                let err = UnixStream::connect(&missing).await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::NotFound);

                let server = spindle::spawn(async move {
                    let mut handlers = Vec::new();
                    for _ in 0..3 {
                        let (stream, _) = listener.accept().await?;
                        handlers.push(spindle::spawn(async move {
                            let mut got = Vec::new();
                            AsyncReadExt::read_to_end(&mut &stream, &mut got).await?;
                            got.reverse();
                            stream.write_all(&got).await?;
                            AsyncWriteExt::close(&mut &stream).await?;
                            spindle::Ok(())
                        }));
                    }
                    for handler in handlers {
                        handler.await?;
                    }
                    spindle::Ok(())
                });
                for i in 0..3 {
                    let stream = UnixStream::connect(&path).await?;
                    let msg = pattern(800 + i, 100_000);
                    stream.write_all(&msg).await?;
                    stream.shutdown(Shutdown::Write)?;
                    let got = read_to_end(&stream).await?;
                    let expected: Vec<u8> = msg.iter().rev().copied().collect();
                    assert!(got == expected, "client {i}: reversed bytes back");
                }
                server.await?;
                std::fs::remove_file(&path)?;

                let (a, b) = UnixStream::pair()?;
                a.write_all(b"ping").await?;
                let mut buf = [0u8; 4];
                b.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"ping");
                let (b_read, b_write) = b.into_split();
                b_write.write_all(b"pong").await?;
                a.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"pong");
                let b = b_read.reunite(b_write).expect("halves of one stream");
                let (a_read, a_write) = UnixStream::split(&a);
                let (sent, received) = join(a_write.write_all(b"both"), async {
                    let mut buf = [0u8; 4];
                    b.read_exact(&mut buf).await?;
                    b.write_all(&buf).await?;
                    a_read.read_exact(&mut buf).await?;
                    spindle::Ok(buf)
                })
                .await;
                sent?;
                assert_eq!(&received?, b"both");
                drop(a);
                assert_eq!(
                    b.read(&mut buf).await?,
                    0,
                    "end of stream after the peer dropped"
                );
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- futures-io ---------------------------------------------------------------------------------

/// The server echoes with `futures_util::io::copy` from a read half into a
/// write half and closes with `AsyncWriteExt::close`; the client writes
/// 4 MiB with `AsyncWriteExt::write_all` while reading with
/// `AsyncReadExt::read_to_end`. The echo is byte-for-byte the same.
#[test]
fn futures_io_copy_echoes_four_mib_over_tcp() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let data = pattern(5, 4 << 20);
                let (listener, addr) = listener().await?;
                let server = spindle::spawn(async move {
                    let (stream, _) = listener.accept().await?;
                    let (reader, mut writer) = TcpStream::split(&stream);
                    let n = copy(reader, &mut writer).await?;
                    AsyncWriteExt::flush(&mut writer).await?;
                    AsyncWriteExt::close(&mut writer).await?;
                    spindle::Ok(n)
                });
                let client = TcpStream::connect(addr).await?;
                let (mut w, mut r) = (&client, &client);
                let (sent, received) = join(
                    async {
                        AsyncWriteExt::write_all(&mut w, &data).await?;
                        AsyncWriteExt::close(&mut w).await
                    },
                    async {
                        let mut out = Vec::new();
                        AsyncReadExt::read_to_end(&mut r, &mut out).await?;
                        io::Result::Ok(out)
                    },
                )
                .await;
                sent?;
                let received = received?;
                assert_eq!(received.len(), data.len());
                assert!(
                    received == data,
                    "differs at {:?}",
                    first_difference(&received, &data)
                );
                assert_eq!(server.await?, data.len() as u64);
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// A task blocked in `AsyncReadExt::read` on a stream with no data is
/// cancelled: the read returns an `io::Error` of kind `Other` (not
/// `Interrupted`, which readers would retry), `?` turns it back into the
/// cancellation, and the task ends cancelled with the message. Nothing was
/// consumed. A second task that catches the cancellation reads again and
/// gets the data: the cancel was delivered once.
#[test]
fn a_cancel_delivered_through_futures_io_ends_the_task_cancelled_after_question_mark() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (client, server) = tcp_pair().await?;
                let server = Arc::new(server);
                let seen: Arc<Mutex<Option<io::ErrorKind>>> = Arc::default();
                let started = Promise::<()>::new();
                let (s, st, sn) = (server.clone(), started.clone(), seen.clone());
                let reader = spindle::spawn(async move {
                    st.set_result(())?;
                    let mut r: &TcpStream = &s;
                    let mut buf = [0u8; 16];
                    let result = AsyncReadExt::read(&mut r, &mut buf).await;
                    *sn.lock().unwrap() = result.as_ref().err().map(io::Error::kind);
                    let n = result?;
                    spindle::Ok(n)
                });
                started.await?;
                spindle::sleep(ms(20)).await?;
                reader.cancel_with("stop reading");
                wait_done(&reader).await?;
                assert!(reader.cancelled(), "ended {:?}", reader.state());
                let err = reader.clone().await.unwrap_err();
                assert!(err.is_cancelled());
                assert_eq!(err.cancel_message(), Some("stop reading"));
                assert_eq!(*seen.lock().unwrap(), Some(io::ErrorKind::Other));

                client.write_all(b"after").await?;
                let mut buf = [0u8; 5];
                server.read_exact(&mut buf).await?;
                assert_eq!(&buf, b"after");

                let started = Promise::<()>::new();
                let (s, st) = (server.clone(), started.clone());
                let catcher = spindle::spawn(async move {
                    st.set_result(())?;
                    let mut r: &TcpStream = &s;
                    let mut buf = [0u8; 16];
                    let first = AsyncReadExt::read(&mut r, &mut buf).await.unwrap_err();
                    assert!(spindle::Error::from(first).is_cancelled());
                    let n = AsyncReadExt::read(&mut r, &mut buf).await?;
                    spindle::Ok(buf[..n].to_vec())
                });
                started.await?;
                spindle::sleep(ms(20)).await?;
                catcher.cancel();
                client.write_all(b"second").await?;
                assert_eq!(catcher.clone().await?, b"second");
                assert!(!catcher.cancelled());
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- bad input ----------------------------------------------------------------------------------

/// Addresses that are not addresses give `Io` errors (`InvalidInput` where
/// the text alone says so), never a panic: for connect, bind, lookup,
/// `send_to` and UDP connect. A port in use and an oversized datagram are
/// `Io` errors too.
#[test]
fn invalid_addresses_and_arguments_are_io_errors_not_panics() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                for bad in ["not an address", "", "127.0.0.1:99999", "127.0.0.1:-1"] {
                    let err = TcpStream::connect(bad).await.unwrap_err();
                    assert_eq!(
                        io_kind(&err),
                        io::ErrorKind::InvalidInput,
                        "connect {bad:?}"
                    );
                    let err = TcpListener::bind(bad).await.unwrap_err();
                    assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput, "bind {bad:?}");
                    let err = UdpSocket::bind(bad).await.unwrap_err();
                    assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput, "udp {bad:?}");
                    let err = lookup_host(bad).await.unwrap_err();
                    assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput, "lookup {bad:?}");
                }
                // Not a valid IPv4 address: looked up as a host name, which
                // fails (the exact kind depends on the resolver).
                let err = TcpStream::connect("999.0.0.1:80").await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");

                let socket = UdpSocket::bind("127.0.0.1:0").await?;
                let err = socket.send_to(b"x", "not an address").await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput);
                let err = socket.connect("127.0.0.1:99999").await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput);
                let err = socket.send(b"not connected").await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
                let err = socket
                    .send_to(&vec![0u8; 70_000], socket.local_addr()?)
                    .await
                    .unwrap_err();
                assert_eq!(os_error(&err), Some(libc::EMSGSIZE), "{err:?}");

                let (listener, addr) = listener().await?;
                let err = TcpListener::bind(addr).await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::AddrInUse);
                drop(listener);
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// After `shutdown(Both)`: writes fail with `BrokenPipe` (inherent and
/// futures-io), reads return end of stream, the peer reads end of stream,
/// and a second shutdown or a futures-io close does not panic.
#[test]
fn operations_after_shutdown_both_fail_with_io_errors_or_read_end_of_stream() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (client, server) = tcp_pair().await?;
                client.write_all(b"before").await?;
                client.shutdown(Shutdown::Both)?;
                let err = client.write(b"after").await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::BrokenPipe);
                let err = client.write_all(b"after").await.unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::BrokenPipe);
                let err = AsyncWriteExt::write(&mut &client, b"after")
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
                let mut buf = [0u8; 16];
                assert_eq!(client.read(&mut buf).await?, 0);
                assert_eq!(read_to_end(&server).await?, b"before");
                if let Err(e) = client.shutdown(Shutdown::Both) {
                    io_kind(&e);
                }
                AsyncWriteExt::close(&mut &client).await?;
                // The server may still write; its data is discarded or reset.
                match server.write(b"to a closed reader").await {
                    Ok(_) => {}
                    Err(e) => {
                        io_kind(&e);
                    }
                }
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// A regular file's descriptor adopted as a TCP stream, or wrapped in an
/// `AsyncFd`, is refused with an `Io` error `InvalidInput` (epoll cannot
/// watch it); the `AsyncFd` case leaves the file open and usable. A
/// connected socket adopted as a listener fails `accept` with an `Io`
/// error instead of waiting forever.
#[test]
fn descriptors_that_are_not_what_they_claim_are_refused_with_io_errors() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let path =
                    std::env::temp_dir().join(format!("spindle-net-{}.txt", std::process::id()));
                std::fs::write(&path, b"contents")?;

                let file = std::fs::File::open(&path)?;
                // SAFETY: the descriptor's ownership moves from the file to the
                // stream (into_raw_fd), so it is closed exactly once.
                let stream = unsafe { std::net::TcpStream::from_raw_fd(file.into_raw_fd()) };
                let err = TcpStream::from_std(stream).unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput, "{err:?}");

                let file = Arc::new(std::fs::File::open(&path)?);
                let err = AsyncFd::new(file.clone()).unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput, "{err:?}");
                let mut contents = String::new();
                (&*file).read_to_string(&mut contents)?;
                assert_eq!(contents, "contents", "the file is still open");
                std::fs::remove_file(&path)?;

                let (connected, _peer) = std_tcp_pair();
                // SAFETY: ownership of the descriptor moves to the listener.
                let not_listening =
                    unsafe { std::net::TcpListener::from_raw_fd(connected.into_raw_fd()) };
                let listener = TcpListener::from_std(not_listening)?;
                let err = spindle::timeout(Duration::from_secs(10), listener.accept())
                    .await
                    .unwrap_err();
                assert_eq!(io_kind(&err), io::ErrorKind::InvalidInput, "{err:?}");
                spindle::Ok(())
            })
            .unwrap()
    })
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// Sockets made on a thread without a runtime (plain calls, and futures
/// polled by hand) fail with a `Runtime` error that says what is missing.
#[test]
fn sockets_made_without_a_runtime_fail_with_a_runtime_error() {
    within_limit(|| {
        let check = |err: spindle::Error| {
            assert_eq!(err.kind(), ErrorKind::Runtime, "{err:?}");
            assert!(err.to_string().contains("runtime"), "{err}");
        };
        check(UnixStream::pair().unwrap_err());
        let path = socket_path("no-runtime");
        check(UnixListener::bind(&path).unwrap_err());
        let _ = std::fs::remove_file(&path);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        check(TcpListener::from_std(std_listener).unwrap_err());
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listening.local_addr().unwrap();
        let (std_client, _std_server) = std_tcp_pair();
        check(TcpStream::from_std(std_client).unwrap_err());
        match poll_once(UdpSocket::bind("127.0.0.1:0")) {
            Poll::Ready(result) => check(result.unwrap_err()),
            Poll::Pending => panic!("bind with a literal address does not wait"),
        }
        match poll_once(TcpListener::bind("127.0.0.1:0")) {
            Poll::Ready(result) => check(result.unwrap_err()),
            Poll::Pending => panic!("bind with a literal address does not wait"),
        }
        match poll_once(TcpStream::connect(addr)) {
            Poll::Ready(result) => check(result.unwrap_err()),
            Poll::Pending => panic!("connect without a runtime does not wait"),
        }
    })
}

/// Streams that outlive their runtime fail with a `Runtime` error when
/// used from another runtime (inherent and futures-io), instead of
/// waiting forever; the new runtime's own sockets work.
#[test]
fn a_stream_that_outlives_its_runtime_fails_instead_of_hanging() {
    within_limit(|| {
        let first = rt(1);
        let (a, b) = first.block_on(async { UnixStream::pair() }).unwrap();
        let (client, server) = first.block_on(tcp_pair()).unwrap();
        drop(first);
        rt(1)
            .block_on(async move {
                let mut buf = [0u8; 8];
                let err = a.read(&mut buf).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Runtime, "{err:?}");
                let err = b.write_all(b"x").await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Runtime, "{err:?}");
                let err = AsyncReadExt::read(&mut &client, &mut buf)
                    .await
                    .unwrap_err();
                assert_eq!(spindle::Error::from(err).kind(), ErrorKind::Runtime);
                let err = server.readable().await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Runtime, "{err:?}");

                let (c, d) = UnixStream::pair()?;
                c.write_all(b"new").await?;
                d.read_exact(&mut buf[..3]).await?;
                assert_eq!(&buf[..3], b"new");
                spindle::Ok(())
            })
            .unwrap()
    })
}

// -- shutdown ------------------------------------------------------------------------------------

/// Writes until a write fails.
async fn write_forever(stream: &TcpStream) -> spindle::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    loop {
        stream.write(&chunk).await?;
    }
}

/// Tasks wait in `accept`, `read` (TCP and an owned read half), a `write`
/// on full buffers, a futures-io read on a Unix stream and `recv_from`;
/// dropping the runtime cancels them all and returns quickly (the shutdown
/// limit is set to 20 s: a hang would show as a slow drop), every task ends
/// cancelled, none is reported destroyed pending, and the sockets are
/// closed (the peers read end of stream).
#[test]
fn dropping_the_runtime_ends_tasks_waiting_on_io_promptly() {
    within_limit(|| {
        let reports: Arc<Mutex<Vec<Unhandled>>> = Arc::default();
        let sink = reports.clone();
        let runtime = Runtime::builder()
            .worker_threads(2)
            .shutdown_timeout(Duration::from_secs(20))
            .on_unhandled_error(move |report| sink.lock().unwrap().push(report.clone()))
            .build()
            .unwrap();
        let (read_client, mut read_peer) = std_tcp_pair();
        let (write_client, write_peer) = std_tcp_pair();
        let (half_client, mut half_peer) = std_tcp_pair();
        let write_fd = write_peer.as_raw_fd();
        let tasks: Vec<AnyTask> = runtime
            .block_on(async move {
                let mut tasks = Vec::new();
                let (listener, _) = listener().await?;
                tasks.push(spindle::spawn(
                    async move { listener.accept().await.map(drop) },
                ));

                let stream = TcpStream::from_std(read_client)?;
                tasks.push(spindle::spawn(async move {
                    let mut buf = [0u8; 8];
                    stream.read(&mut buf).await.map(drop)
                }));

                let stream = TcpStream::from_std(write_client)?;
                tasks.push(spindle::spawn(async move { write_forever(&stream).await }));

                let (half, _write_half) = TcpStream::from_std(half_client)?.into_split();
                tasks.push(spindle::spawn(async move {
                    let _keep = _write_half;
                    let mut buf = [0u8; 8];
                    half.read_exact(&mut buf).await
                }));

                let (unix, unix_peer) = UnixStream::pair()?;
                tasks.push(spindle::spawn(async move {
                    let _keep = unix_peer;
                    let mut buf = [0u8; 8];
                    AsyncReadExt::read(&mut &unix, &mut buf).await?;
                    spindle::Ok(())
                }));

                let udp = UdpSocket::bind("127.0.0.1:0").await?;
                tasks.push(spindle::spawn(async move {
                    let mut buf = [0u8; 8];
                    udp.recv_from(&mut buf).await.map(drop)
                }));

                eventually(
                    "the writer filled the buffers",
                    Duration::from_secs(10),
                    || unread_bytes(write_fd) > 0,
                )
                .await?;
                spindle::sleep(ms(50)).await?;
                for task in &tasks {
                    assert!(!task.done(), "{} ended early", task.name());
                }
                spindle::Ok(tasks.iter().map(|t| t.as_any().clone()).collect())
            })
            .unwrap();

        let start = Instant::now();
        drop(runtime);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "dropping the runtime took {took:?}"
        );
        for task in &tasks {
            assert!(
                task.done() && task.cancelled(),
                "{} ended {:?}",
                task.name(),
                task.state()
            );
        }
        let destroyed = reports
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.kind() == UnhandledKind::DestroyedPending)
            .count();
        assert_eq!(destroyed, 0, "{:?}", reports.lock().unwrap());
        for peer in [&mut read_peer, &mut half_peer] {
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(peer.read(&mut buf).unwrap(), 0, "the socket was closed");
        }
        drop(write_peer);
        println!("dropping the runtime took {took:?}");
    })
}

/// Bytes a cancelled `read_exact` gave back are readable at once, come first
/// for `peek` too, and a `read_exact` future that is dropped (not cancelled)
/// gives its bytes back as well.
#[test]
fn given_back_bytes_are_readable_peekable_and_survive_a_dropped_read_exact() {
    rt(2)
        .block_on(async {
            let (client, server) = tcp_pair().await?;
            let server = Arc::new(server);
            client.write_all(b"abcd").await?;
            let fd = server.as_raw_fd();
            eventually("4 bytes queued", Duration::from_secs(5), || {
                unread_bytes(fd) == 4
            })
            .await?;
            let reader = server.clone();
            let task = spindle::spawn(async move {
                let mut buf = [0u8; 10];
                reader.read_exact(&mut buf).await?;
                spindle::Ok(buf)
            });
            eventually("the reader took them", Duration::from_secs(5), || {
                unread_bytes(fd) == 0
            })
            .await?;
            task.cancel();
            wait_done(&task).await?;
            spindle::timeout(Duration::from_secs(5), server.readable()).await?;
            client.write_all(b"EFGH").await?;
            let mut buf = [0u8; 4];
            assert_eq!(server.peek(&mut buf).await?, 4);
            assert_eq!(&buf, b"abcd");
            // A read_exact dropped part-way (raced against a short sleep).
            {
                let mut big = [0u8; 100];
                let read = pin!(server.read_exact(&mut big));
                let sleep = pin!(spindle::sleep(ms(50)));
                futures_util::future::select(read, sleep).await;
            }
            let mut all = [0u8; 8];
            server.read_exact(&mut all).await?;
            assert_eq!(&all, b"abcdEFGH");
            // An empty read returns at once, with nothing ready.
            let empty = spindle::timeout(Duration::from_secs(5), server.read(&mut [])).await?;
            assert_eq!(empty, 0);
            spindle::Ok(())
        })
        .unwrap();
}
