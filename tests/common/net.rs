//! Helpers for the networking tests (`tests/net.rs`): test data, socket
//! options the API does not offer, bounded waits, and running a test body
//! in a child process.
#![allow(dead_code)]

use spindle::net::{TcpListener, TcpStream};
use spindle::{Error, ErrorKind};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `len` pseudo-random bytes from `seed` (xorshift64*): the same seed gives
/// the same bytes, different seeds different ones.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small deterministic generator for sizes and delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// Where two byte strings first differ (for short failure messages).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// The `std::io::ErrorKind` of a spindle error, asserting that it is an
/// I/O error (`ErrorKind::Io` with the OS error inside).
#[track_caller]
pub fn io_kind(error: &Error) -> io::ErrorKind {
    assert_eq!(
        error.kind(),
        ErrorKind::Io,
        "expected an I/O error, got {error:?}"
    );
    error
        .io_error()
        .expect("an Io error carries its io::Error")
        .kind()
}

/// The OS error number of a spindle I/O error.
pub fn os_error(error: &Error) -> Option<i32> {
    error.io_error().and_then(io::Error::raw_os_error)
}

/// A listener on a free loopback port, and its address.
pub async fn listener() -> spindle::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A connected pair of TCP streams on loopback: (client, server).
pub async fn tcp_pair() -> spindle::Result<(TcpStream, TcpStream)> {
    let (listener, addr) = listener().await?;
    let client = TcpStream::connect(addr).await?;
    let (server, _) = listener.accept().await?;
    Ok((client, server))
}

/// Echoes everything it reads until end of stream, then half-closes;
/// returns the number of bytes echoed.
pub async fn echo(stream: TcpStream) -> spindle::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.shutdown(std::net::Shutdown::Write)?;
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Makes closing `fd` reset the connection (`SO_LINGER` on with a zero
/// time): the peer gets `ECONNRESET` instead of an end of stream.
pub fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid pointer to a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        io::Error::last_os_error()
    );
}

/// Bytes waiting in the socket's receive queue, not yet read by anyone
/// (`FIONREAD`).
pub fn unread_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "ioctl(FIONREAD): {}", io::Error::last_os_error());
    n as usize
}

/// Waits (sleeping 2 ms between checks) until `condition` holds; fails the
/// test with `what` after a generous `limit`.
pub async fn eventually(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
) -> spindle::Result<()> {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        spindle::sleep(Duration::from_millis(2)).await?;
    }
    Ok(())
}

/// A loopback TCP port that is bound (so nobody else gets it) but not
/// listening: connecting to it is refused.
pub struct UnlistenedPort {
    _socket: OwnedFd,
    pub addr: SocketAddr,
}

pub fn unlistened_port() -> UnlistenedPort {
    // SAFETY: plain socket calls on a descriptor this function owns, with
    // pointers to correctly sized, initialized `sockaddr_in` values.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        let socket = OwnedFd::from_raw_fd(fd);
        let mut sin: libc::sockaddr_in = mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let mut len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(
            socket.as_raw_fd(),
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            len,
        );
        assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
        let rc = libc::getsockname(
            socket.as_raw_fd(),
            &mut sin as *mut libc::sockaddr_in as *mut libc::sockaddr,
            &mut len,
        );
        assert_eq!(rc, 0, "getsockname: {}", io::Error::last_os_error());
        UnlistenedPort {
            _socket: socket,
            addr: SocketAddr::from(([127, 0, 0, 1], u16::from_be(sin.sin_port))),
        }
    }
}

/// A fresh path for a Unix socket in the temp directory (removed first).
pub fn socket_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "spindle-net-{}-{n}-{name}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// Sets the soft limit on open file descriptors (this process only).
pub fn set_nofile_limit(soft: u64) {
    let mut limit: libc::rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid `rlimit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = (soft as libc::rlim_t).min(limit.rlim_max);
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            0,
            "setrlimit: {}",
            io::Error::last_os_error()
        );
    }
}

/// Opens `/dev/null` until the process is out of descriptors (`EMFILE`);
/// dropping the result frees them all again.
pub fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => files.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return files,
            Err(e) => panic!("unexpected error while exhausting descriptors: {e}"),
        }
        assert!(
            files.len() < 100_000,
            "no EMFILE after 100k descriptors: is the limit lowered?"
        );
    }
}

/// The environment variable that makes a test run its body in the child.
pub const CHILD_ENV: &str = "SPINDLE_NET_TEST_CHILD";
/// What a child prints when its body has run to the end.
pub const CHILD_DONE: &str = "spindle-net-child: body completed";

/// Whether this process is the child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `name` of this test binary in a child process (with
/// [`CHILD_ENV`] set, so the test runs its body there) and fails unless it
/// passes and printed [`CHILD_DONE`] within a generous limit. Process-wide
/// changes (resource limits) then stay in the child.
pub fn run_in_child(name: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("wait for the child"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the child running {name} did not finish within 60 s (hang)");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(CHILD_DONE),
        "the child running {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    for line in stdout.lines().filter(|l| !l.is_empty()) {
        println!("child: {line}");
    }
}

/// A connected pair of standard-library TCP streams on loopback, made
/// without a runtime: (client, server).
pub fn std_tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

fn sockaddr_in(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(addr) = addr else {
        panic!("an IPv4 address expected, got {addr}");
    };
    // SAFETY: all-zero is a valid `sockaddr_in`.
    let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = addr.port().to_be();
    sin.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
    sin
}

/// A TCP socket created now (taking a descriptor) and connected later with
/// [`connect_blocking`], when the process may have no descriptor left.
pub fn unconnected_tcp_socket() -> OwnedFd {
    // SAFETY: socket(2); the descriptor is owned by the returned value.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    }
}

/// Connects `socket` to `addr` (blocking; immediate on loopback, since the
/// kernel completes the handshake into the listener's backlog).
pub fn connect_blocking(socket: OwnedFd, addr: SocketAddr) -> std::net::TcpStream {
    let sin = sockaddr_in(addr);
    // SAFETY: connect(2) with a valid, correctly sized address.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect: {}", io::Error::last_os_error());
    std::net::TcpStream::from(socket)
}
