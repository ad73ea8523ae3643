//! HTTP/1.1 over a Unix socket: a ureq connector that ignores the URL's host and
//! opens the daemon's socket instead (a daemon started with `--api-bind unix:PATH`).
//!
//! The URL the client builds is `http://localhost/...`, so the `Host` header passes the
//! server's DNS-rebinding check; the resolver answers that name without DNS.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use ureq::Error;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// Base URL of a client on a Unix socket (the host is never resolved).
pub(crate) const UNIX_BASE: &str = "http://localhost";

/// Opens `path` for every connection the agent makes.
#[derive(Debug, Clone)]
pub(crate) struct UnixConnector {
    pub(crate) path: PathBuf,
}

impl Connector<()> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, Error> {
        let stream = UnixStream::connect(&self.path)?;
        let c = details.config;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(c.input_buffer_size(), c.output_buffer_size()),
        }))
    }
}

/// No DNS: every name is the socket.
#[derive(Debug)]
pub(crate) struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let mut a = self.empty();
        a.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        Ok(a)
    }
}

/// One connection to the socket.
#[derive(Debug)]
pub(crate) struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.stream
            .set_write_timeout(timeout.not_zero().map(|d| *d))?;
        let out = &self.buffers.output()[..amount];
        self.stream.write_all(out)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.stream
            .set_read_timeout(timeout.not_zero().map(|d| *d))?;
        let input = self.buffers.input_append_buf();
        let n = self.stream.read(input)?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open when a non-blocking read finds nothing waiting (not closed, no stray bytes).
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let open = matches!(
            self.stream.read(&mut b),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        self.stream.set_nonblocking(false).is_ok() && open
    }
}
