//! WASI error numbers and the mapping from host I/O errors.

use std::fmt;
use std::io;

/// A `wasi_snapshot_preview1` error number (`errno`), as returned to the
/// guest by every call except `proc_exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[allow(missing_docs)] // The names are WASI's; see `Errno::name`.
pub enum Errno {
    Success = 0,
    TooBig = 1,
    Acces = 2,
    AddrInUse = 3,
    AddrNotAvail = 4,
    AfNoSupport = 5,
    Again = 6,
    Already = 7,
    Badf = 8,
    BadMsg = 9,
    Busy = 10,
    Canceled = 11,
    Child = 12,
    ConnAborted = 13,
    ConnRefused = 14,
    ConnReset = 15,
    Deadlk = 16,
    DestAddrReq = 17,
    Dom = 18,
    Dquot = 19,
    Exist = 20,
    Fault = 21,
    Fbig = 22,
    HostUnreach = 23,
    Idrm = 24,
    Ilseq = 25,
    InProgress = 26,
    Intr = 27,
    Inval = 28,
    Io = 29,
    IsConn = 30,
    IsDir = 31,
    Loop = 32,
    Mfile = 33,
    Mlink = 34,
    MsgSize = 35,
    Multihop = 36,
    NameTooLong = 37,
    NetDown = 38,
    NetReset = 39,
    NetUnreach = 40,
    Nfile = 41,
    NoBufs = 42,
    NoDev = 43,
    NoEnt = 44,
    NoExec = 45,
    NoLck = 46,
    NoLink = 47,
    NoMem = 48,
    NoMsg = 49,
    NoProtoOpt = 50,
    NoSpc = 51,
    NoSys = 52,
    NotConn = 53,
    NotDir = 54,
    NotEmpty = 55,
    NotRecoverable = 56,
    NotSock = 57,
    NotSup = 58,
    NoTty = 59,
    Nxio = 60,
    Overflow = 61,
    OwnerDead = 62,
    Perm = 63,
    Pipe = 64,
    Proto = 65,
    ProtoNoSupport = 66,
    ProtoType = 67,
    Range = 68,
    Rofs = 69,
    Spipe = 70,
    Srch = 71,
    Stale = 72,
    TimedOut = 73,
    TxtBsy = 74,
    Xdev = 75,
    NotCapable = 76,
}

impl Errno {
    /// The number the guest sees.
    pub fn raw(self) -> u16 {
        self as u16
    }

    /// The WASI name, e.g. `"badf"`.
    pub fn name(self) -> &'static str {
        use Errno::*;
        match self {
            Success => "success",
            TooBig => "2big",
            Acces => "acces",
            AddrInUse => "addrinuse",
            AddrNotAvail => "addrnotavail",
            AfNoSupport => "afnosupport",
            Again => "again",
            Already => "already",
            Badf => "badf",
            BadMsg => "badmsg",
            Busy => "busy",
            Canceled => "canceled",
            Child => "child",
            ConnAborted => "connaborted",
            ConnRefused => "connrefused",
            ConnReset => "connreset",
            Deadlk => "deadlk",
            DestAddrReq => "destaddrreq",
            Dom => "dom",
            Dquot => "dquot",
            Exist => "exist",
            Fault => "fault",
            Fbig => "fbig",
            HostUnreach => "hostunreach",
            Idrm => "idrm",
            Ilseq => "ilseq",
            InProgress => "inprogress",
            Intr => "intr",
            Inval => "inval",
            Io => "io",
            IsConn => "isconn",
            IsDir => "isdir",
            Loop => "loop",
            Mfile => "mfile",
            Mlink => "mlink",
            MsgSize => "msgsize",
            Multihop => "multihop",
            NameTooLong => "nametoolong",
            NetDown => "netdown",
            NetReset => "netreset",
            NetUnreach => "netunreach",
            Nfile => "nfile",
            NoBufs => "nobufs",
            NoDev => "nodev",
            NoEnt => "noent",
            NoExec => "noexec",
            NoLck => "nolck",
            NoLink => "nolink",
            NoMem => "nomem",
            NoMsg => "nomsg",
            NoProtoOpt => "noprotoopt",
            NoSpc => "nospc",
            NoSys => "nosys",
            NotConn => "notconn",
            NotDir => "notdir",
            NotEmpty => "notempty",
            NotRecoverable => "notrecoverable",
            NotSock => "notsock",
            NotSup => "notsup",
            NoTty => "notty",
            Nxio => "nxio",
            Overflow => "overflow",
            OwnerDead => "ownerdead",
            Perm => "perm",
            Pipe => "pipe",
            Proto => "proto",
            ProtoNoSupport => "protonosupport",
            ProtoType => "prototype",
            Range => "range",
            Rofs => "rofs",
            Spipe => "spipe",
            Srch => "srch",
            Stale => "stale",
            TimedOut => "timedout",
            TxtBsy => "txtbsy",
            Xdev => "xdev",
            NotCapable => "notcapable",
        }
    }

    /// Maps a host `errno` value (Linux numbering, through rustix) to WASI.
    fn from_host(e: rustix::io::Errno) -> Errno {
        use rustix::io::Errno as H;
        match e {
            H::TOOBIG => Errno::TooBig,
            H::ACCESS => Errno::Acces,
            H::ADDRINUSE => Errno::AddrInUse,
            H::ADDRNOTAVAIL => Errno::AddrNotAvail,
            H::AFNOSUPPORT => Errno::AfNoSupport,
            H::AGAIN => Errno::Again,
            H::ALREADY => Errno::Already,
            H::BADF => Errno::Badf,
            H::BADMSG => Errno::BadMsg,
            H::BUSY => Errno::Busy,
            H::CANCELED => Errno::Canceled,
            H::CHILD => Errno::Child,
            H::CONNABORTED => Errno::ConnAborted,
            H::CONNREFUSED => Errno::ConnRefused,
            H::CONNRESET => Errno::ConnReset,
            H::DEADLK => Errno::Deadlk,
            H::DESTADDRREQ => Errno::DestAddrReq,
            H::DOM => Errno::Dom,
            H::DQUOT => Errno::Dquot,
            H::EXIST => Errno::Exist,
            H::FAULT => Errno::Fault,
            H::FBIG => Errno::Fbig,
            H::HOSTUNREACH => Errno::HostUnreach,
            H::IDRM => Errno::Idrm,
            H::ILSEQ => Errno::Ilseq,
            H::INPROGRESS => Errno::InProgress,
            H::INTR => Errno::Intr,
            H::INVAL => Errno::Inval,
            H::IO => Errno::Io,
            H::ISCONN => Errno::IsConn,
            H::ISDIR => Errno::IsDir,
            H::LOOP => Errno::Loop,
            H::MFILE => Errno::Mfile,
            H::MLINK => Errno::Mlink,
            H::MSGSIZE => Errno::MsgSize,
            H::MULTIHOP => Errno::Multihop,
            H::NAMETOOLONG => Errno::NameTooLong,
            H::NETDOWN => Errno::NetDown,
            H::NETRESET => Errno::NetReset,
            H::NETUNREACH => Errno::NetUnreach,
            H::NFILE => Errno::Nfile,
            H::NOBUFS => Errno::NoBufs,
            H::NODEV => Errno::NoDev,
            H::NOENT => Errno::NoEnt,
            H::NOEXEC => Errno::NoExec,
            H::NOLCK => Errno::NoLck,
            H::NOLINK => Errno::NoLink,
            H::NOMEM => Errno::NoMem,
            H::NOMSG => Errno::NoMsg,
            H::NOPROTOOPT => Errno::NoProtoOpt,
            H::NOSPC => Errno::NoSpc,
            H::NOSYS => Errno::NoSys,
            H::NOTCONN => Errno::NotConn,
            H::NOTDIR => Errno::NotDir,
            H::NOTEMPTY => Errno::NotEmpty,
            H::NOTRECOVERABLE => Errno::NotRecoverable,
            H::NOTSOCK => Errno::NotSock,
            H::NOTSUP => Errno::NotSup,
            H::NOTTY => Errno::NoTty,
            H::NXIO => Errno::Nxio,
            H::OVERFLOW => Errno::Overflow,
            H::OWNERDEAD => Errno::OwnerDead,
            H::PERM => Errno::Perm,
            H::PIPE => Errno::Pipe,
            H::PROTO => Errno::Proto,
            H::PROTONOSUPPORT => Errno::ProtoNoSupport,
            H::PROTOTYPE => Errno::ProtoType,
            H::RANGE => Errno::Range,
            H::ROFS => Errno::Rofs,
            H::SPIPE => Errno::Spipe,
            H::SRCH => Errno::Srch,
            H::STALE => Errno::Stale,
            H::TIMEDOUT => Errno::TimedOut,
            H::TXTBSY => Errno::TxtBsy,
            H::XDEV => Errno::Xdev,
            _ => Errno::Io,
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.name(), self.raw())
    }
}

impl std::error::Error for Errno {}

impl From<io::Error> for Errno {
    /// Host errors keep their `errno` when they have one. Errors made by
    /// cap-std without one (a path that would leave the sandbox is
    /// `PermissionDenied`) map by kind; a sandbox escape is `perm`.
    fn from(e: io::Error) -> Errno {
        if let Some(host) = rustix::io::Errno::from_io_error(&e) {
            return Errno::from_host(host);
        }
        match e.kind() {
            io::ErrorKind::NotFound => Errno::NoEnt,
            io::ErrorKind::PermissionDenied => Errno::Perm,
            io::ErrorKind::AlreadyExists => Errno::Exist,
            io::ErrorKind::InvalidInput => Errno::Inval,
            io::ErrorKind::InvalidData => Errno::Ilseq,
            io::ErrorKind::WouldBlock => Errno::Again,
            io::ErrorKind::Interrupted => Errno::Intr,
            io::ErrorKind::BrokenPipe => Errno::Pipe,
            io::ErrorKind::WriteZero => Errno::NoSpc,
            io::ErrorKind::Unsupported => Errno::NotSup,
            io::ErrorKind::OutOfMemory => Errno::NoMem,
            io::ErrorKind::NotADirectory => Errno::NotDir,
            io::ErrorKind::IsADirectory => Errno::IsDir,
            io::ErrorKind::DirectoryNotEmpty => Errno::NotEmpty,
            io::ErrorKind::TimedOut => Errno::TimedOut,
            _ => Errno::Io,
        }
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        Errno::from_host(e)
    }
}

/// The result of a WASI call's body: `Err` becomes the guest's errno.
pub type WasiResult<T> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_keep_their_meaning() {
        assert_eq!(Errno::from(io::Error::from_raw_os_error(2)), Errno::NoEnt);
        assert_eq!(Errno::from(io::Error::from_raw_os_error(21)), Errno::IsDir);
        assert_eq!(Errno::from(io::Error::from_raw_os_error(40)), Errno::Loop);
        assert_eq!(Errno::from(io::Error::new(io::ErrorKind::PermissionDenied, "escape")), Errno::Perm);
        assert_eq!(Errno::NotCapable.raw(), 76);
        assert_eq!(Errno::Fault.to_string(), "fault (errno 21)");
    }
}
