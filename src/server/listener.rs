//! Listening sockets. Every shard listens on the same address with SO_REUSEPORT and the
//! kernel spreads new connections across them; each connection then lives on the shard
//! that accepted it (its home).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

/// One bind address as Redis's `bind` writes it: "*" (any IPv4), "::*" (any IPv6), an
/// address; a leading '-' makes it optional (failure to bind is logged, not fatal).
pub struct BindAddr {
    pub ip: IpAddr,
    pub optional: bool,
}

pub fn parse_bind(spec: &str) -> Result<BindAddr, String> {
    let (optional, s) = match spec.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let ip = match s {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "::*" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => s.parse().map_err(|_| format!("invalid bind address '{spec}'"))?,
    };
    Ok(BindAddr { ip, optional })
}

fn cvt(r: libc::c_int) -> std::io::Result<libc::c_int> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Fails with EADDRINUSE when another process already listens on `addr`. Our own listeners
/// share the port through SO_REUSEPORT, which would also let a second basalt (same user)
/// join the port silently and split the clients: a probe bound *without* SO_REUSEPORT is
/// refused by any existing listener, so we refuse to start as Redis does.
pub fn probe_exclusive(addr: SocketAddr) -> std::io::Result<()> {
    let fd = bind_socket(addr, false)?;
    // SAFETY: closing the probe we just created.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Creates, binds and listens a TCP socket with SO_REUSEPORT (and IPV6_V6ONLY for IPv6,
/// so "*" and "::*" can both be bound, as Redis does).
pub fn listen(addr: SocketAddr, backlog: i32) -> std::io::Result<RawFd> {
    let fd = bind_socket(addr, true)?;
    // SAFETY: listen on the descriptor we own; closed on error.
    unsafe {
        if let Err(e) = cvt(libc::listen(fd, backlog)) {
            libc::close(fd);
            return Err(e);
        }
    }
    Ok(fd)
}

fn bind_socket(addr: SocketAddr, reuseport: bool) -> std::io::Result<RawFd> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket syscalls on a descriptor we own; closed on every error path.
    unsafe {
        let fd = cvt(libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0))?;
        let result = (|| {
            let one: libc::c_int = 1;
            let p = &one as *const libc::c_int as *const libc::c_void;
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            cvt(libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, len))?;
            if reuseport {
                cvt(libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, p, len))?;
            }
            match addr {
                SocketAddr::V4(a) => {
                    let mut sin: libc::sockaddr_in = std::mem::zeroed();
                    sin.sin_family = libc::AF_INET as libc::sa_family_t;
                    sin.sin_port = a.port().to_be();
                    sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                    cvt(libc::bind(
                        fd,
                        &sin as *const _ as *const libc::sockaddr,
                        std::mem::size_of_val(&sin) as libc::socklen_t,
                    ))?;
                }
                SocketAddr::V6(a) => {
                    cvt(libc::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, p, len))?;
                    let mut sin6: libc::sockaddr_in6 = std::mem::zeroed();
                    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sin6.sin6_port = a.port().to_be();
                    sin6.sin6_addr.s6_addr = a.ip().octets();
                    cvt(libc::bind(
                        fd,
                        &sin6 as *const _ as *const libc::sockaddr,
                        std::mem::size_of_val(&sin6) as libc::socklen_t,
                    ))?;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(fd),
            Err(e) => {
                libc::close(fd);
                Err(e)
            }
        }
    }
}

/// The port a bound socket got (for `port 0`).
pub fn local_port(fd: RawFd) -> std::io::Result<u16> {
    // SAFETY: getsockname into a zeroed sockaddr_storage of the right size.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        cvt(libc::getsockname(
            fd,
            &mut ss as *mut _ as *mut libc::sockaddr,
            &mut len,
        ))?;
        let port = if ss.ss_family as i32 == libc::AF_INET {
            let sin = &*(&ss as *const _ as *const libc::sockaddr_in);
            u16::from_be(sin.sin_port)
        } else {
            let sin6 = &*(&ss as *const _ as *const libc::sockaddr_in6);
            u16::from_be(sin6.sin6_port)
        };
        Ok(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_specs() {
        assert!(parse_bind("*").unwrap().ip.is_unspecified());
        assert!(parse_bind("-::*").unwrap().optional);
        assert_eq!(parse_bind("127.0.0.1").unwrap().ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(parse_bind("nonsense").is_err());
    }

    #[test]
    fn a_port_in_use_by_another_listener_is_detected() {
        let a = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let port = local_port(a).unwrap();
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert!(probe_exclusive(addr).is_err());
        unsafe { libc::close(a) };
        assert!(probe_exclusive(addr).is_ok());
    }

    #[test]
    fn reuseport_lets_every_shard_bind_one_port() {
        let a = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let port = local_port(a).unwrap();
        let b = listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), 16).unwrap();
        assert_eq!(local_port(b).unwrap(), port);
        unsafe {
            libc::close(a);
            libc::close(b);
        }
    }
}
