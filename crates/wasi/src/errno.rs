//! WASI error numbers and the mapping from host I/O errors.

use std::fmt;
use std::io;

/// A `wasi_snapshot_preview1` error number (`errno`), as returned to the
/// guest by every call except `proc_exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Errno {
    /// No error.
    Success = 0,
    /// Argument list too long.
    TooBig = 1,
    /// Permission denied.
    Acces = 2,
    /// Address in use.
    AddrInUse = 3,
    /// Address not available.
    AddrNotAvail = 4,
    /// Address family not supported.
    AfNoSupport = 5,
    /// Resource unavailable, or operation would block.
    Again = 6,
    /// Connection already in progress.
    Already = 7,
    /// Bad file descriptor.
    Badf = 8,
    /// Bad message.
    BadMsg = 9,
    /// Device or resource busy.
    Busy = 10,
    /// Operation canceled.
    Canceled = 11,
    /// No child processes.
    Child = 12,
    /// Connection aborted.
    ConnAborted = 13,
    /// Connection refused.
    ConnRefused = 14,
    /// Connection reset.
    ConnReset = 15,
    /// Resource deadlock would occur.
    Deadlk = 16,
    /// Destination address required.
    DestAddrReq = 17,
    /// Mathematics argument out of domain of function.
    Dom = 18,
    /// Reserved (disk quota).
    Dquot = 19,
    /// File exists.
    Exist = 20,
    /// Bad address: a pointer outside the guest's memory.
    Fault = 21,
    /// File too large.
    Fbig = 22,
    /// Host is unreachable.
    HostUnreach = 23,
    /// Identifier removed.
    Idrm = 24,
    /// Illegal byte sequence (a path that is not UTF-8).
    Ilseq = 25,
    /// Operation in progress.
    InProgress = 26,
    /// Interrupted function.
    Intr = 27,
    /// Invalid argument.
    Inval = 28,
    /// I/O error.
    Io = 29,
    /// Socket is connected.
    IsConn = 30,
    /// Is a directory.
    IsDir = 31,
    /// Too many levels of symbolic links.
    Loop = 32,
    /// File descriptor value too large.
    Mfile = 33,
    /// Too many links.
    Mlink = 34,
    /// Message too large.
    MsgSize = 35,
    /// Reserved (multihop).
    Multihop = 36,
    /// Filename too long.
    NameTooLong = 37,
    /// Network is down.
    NetDown = 38,
    /// Connection aborted by network.
    NetReset = 39,
    /// Network unreachable.
    NetUnreach = 40,
    /// Too many files open in system.
    Nfile = 41,
    /// No buffer space available.
    NoBufs = 42,
    /// No such device.
    NoDev = 43,
    /// No such file or directory.
    NoEnt = 44,
    /// Executable file format error.
    NoExec = 45,
    /// No locks available.
    NoLck = 46,
    /// Reserved (link severed).
    NoLink = 47,
    /// Not enough space.
    NoMem = 48,
    /// No message of the desired type.
    NoMsg = 49,
    /// Protocol not available.
    NoProtoOpt = 50,
    /// No space left on device.
    NoSpc = 51,
    /// Function not supported.
    NoSys = 52,
    /// The socket is not connected.
    NotConn = 53,
    /// Not a directory or a symbolic link to a directory.
    NotDir = 54,
    /// Directory not empty.
    NotEmpty = 55,
    /// State not recoverable.
    NotRecoverable = 56,
    /// Not a socket.
    NotSock = 57,
    /// Not supported, or operation not supported on socket.
    NotSup = 58,
    /// Inappropriate I/O control operation.
    NoTty = 59,
    /// No such device or address.
    Nxio = 60,
    /// Value too large to be stored in data type.
    Overflow = 61,
    /// Previous owner died.
    OwnerDead = 62,
    /// Operation not permitted (also: a path that would leave the sandbox, a change beneath a read-only preopen).
    Perm = 63,
    /// Broken pipe.
    Pipe = 64,
    /// Protocol error.
    Proto = 65,
    /// Protocol not supported.
    ProtoNoSupport = 66,
    /// Protocol wrong type for socket.
    ProtoType = 67,
    /// Result too large.
    Range = 68,
    /// Read-only file system.
    Rofs = 69,
    /// Invalid seek.
    Spipe = 70,
    /// No such process.
    Srch = 71,
    /// Reserved (stale file handle).
    Stale = 72,
    /// Connection timed out.
    TimedOut = 73,
    /// Text file busy.
    TxtBsy = 74,
    /// Cross-device link.
    Xdev = 75,
    /// Extension: capabilities insufficient (a right the descriptor lacks).
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
