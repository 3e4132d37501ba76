using ZonLb.Native.Abi;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>How a socket binds: the kernel's copy mode, zero-copy, or zero-copy when the driver offers it.</summary>
public enum XskBindMode
{
    Auto,
    Copy,
    ZeroCopy,
}

/// <summary>
/// One AF_XDP socket bound to (interface, queue), with its own fill, completion, RX and TX rings. All sockets
/// share one <see cref="Umem"/>: the first registers it, the others bind with XDP_SHARED_UMEM, so a frame
/// received on one interface is transmitted on another without a copy.
/// </summary>
public sealed unsafe class XskSocket : IDisposable
{
    private int _fd;
    private readonly List<(nint Addr, nuint Len)> _maps = new();

    private XskSocket(int fd, string ifName, int ifIndex, int queue)
    {
        _fd = fd;
        InterfaceName = ifName;
        InterfaceIndex = ifIndex;
        QueueId = queue;
    }

    public int Fd => _fd;
    public string InterfaceName { get; }
    public int InterfaceIndex { get; }
    public int QueueId { get; }
    public bool ZeroCopy { get; private set; }
    public XskRing Fill { get; private set; } = null!;
    public XskRing Completion { get; private set; } = null!;
    public XskRing Rx { get; private set; } = null!;
    public XskRing Tx { get; private set; } = null!;

    /// <summary>Creates and binds a socket. <paramref name="umemOwner"/> is null for the socket that registers the UMEM.</summary>
    /// <param name="multiBuffer">Bind with XDP_USE_SG: a frame larger than a UMEM chunk arrives (and is sent) as
    /// several descriptors, XDP_PKT_CONTD on all but the last. Sockets sharing the UMEM inherit it.</param>
    public static XskSocket Create(Umem umem, XskSocket? umemOwner, string ifName, int ifIndex, int queue,
        uint ringSize, XskBindMode mode, bool multiBuffer = false)
    {
        int fd = Libc.socket(Libc.AF_XDP, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw NativeException.FromLastError($"socket(AF_XDP) for {ifName} queue {queue}");
        var s = new XskSocket(fd, ifName, ifIndex, queue);
        try
        {
            string where = $"{ifName} queue {queue}";
            if (umemOwner == null)
            {
                var reg = new XdpUmemReg { Addr = (ulong)umem.Area, Len = umem.Length, ChunkSize = (uint)umem.FrameSize, Headroom = 0 };
                SetOpt(fd, XdpConstants.XDP_UMEM_REG, &reg, (uint)sizeof(XdpUmemReg), $"XDP_UMEM_REG on {where}");
            }
            uint size = ringSize;
            SetOpt(fd, XdpConstants.XDP_UMEM_FILL_RING, &size, 4, $"XDP_UMEM_FILL_RING on {where}");
            SetOpt(fd, XdpConstants.XDP_UMEM_COMPLETION_RING, &size, 4, $"XDP_UMEM_COMPLETION_RING on {where}");
            SetOpt(fd, XdpConstants.XDP_RX_RING, &size, 4, $"XDP_RX_RING on {where}");
            SetOpt(fd, XdpConstants.XDP_TX_RING, &size, 4, $"XDP_TX_RING on {where}");

            XdpMmapOffsets off;
            uint optlen = (uint)sizeof(XdpMmapOffsets);
            if (Libc.getsockopt(fd, Libc.SOL_XDP, XdpConstants.XDP_MMAP_OFFSETS, &off, &optlen) != 0)
                throw NativeException.FromLastError($"getsockopt(XDP_MMAP_OFFSETS) on {where}");

            s.Fill = new XskRing(s.Map(off.Fill.Desc + size * 8UL, XdpConstants.XDP_UMEM_PGOFF_FILL_RING, where), off.Fill, size, isProducer: true);
            s.Completion = new XskRing(s.Map(off.Completion.Desc + size * 8UL, XdpConstants.XDP_UMEM_PGOFF_COMPLETION_RING, where), off.Completion, size, isProducer: false);
            s.Rx = new XskRing(s.Map(off.Rx.Desc + size * (ulong)sizeof(XdpDesc), XdpConstants.XDP_PGOFF_RX_RING, where), off.Rx, size, isProducer: false);
            s.Tx = new XskRing(s.Map(off.Tx.Desc + size * (ulong)sizeof(XdpDesc), XdpConstants.XDP_PGOFF_TX_RING, where), off.Tx, size, isProducer: true);

            s.Bind(umemOwner, mode, multiBuffer ? XdpConstants.XDP_USE_SG : (ushort)0, where);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    private void Bind(XskSocket? umemOwner, XskBindMode mode, ushort sg, string where)
    {
        var sa = new SockaddrXdp { Family = Libc.AF_XDP, IfIndex = (uint)InterfaceIndex, QueueId = (uint)QueueId };
        if (umemOwner != null)
        {
            // A sharing socket inherits copy/zero-copy and need_wakeup from the UMEM's first socket.
            sa.Flags = XdpConstants.XDP_SHARED_UMEM;
            sa.SharedUmemFd = (uint)umemOwner.Fd;
            if (Libc.bind(_fd, &sa, (uint)sizeof(SockaddrXdp)) != 0)
                throw BindError($"bind AF_XDP socket (shared UMEM) to {where}");
            ZeroCopy = umemOwner.ZeroCopy;
            return;
        }
        if (mode != XskBindMode.Copy)
        {
            sa.Flags = (ushort)(XdpConstants.XDP_USE_NEED_WAKEUP | XdpConstants.XDP_ZEROCOPY | sg);
            if (Libc.bind(_fd, &sa, (uint)sizeof(SockaddrXdp)) == 0)
            {
                ZeroCopy = true;
                return;
            }
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (mode == XskBindMode.ZeroCopy || errno != Errno.EOPNOTSUPP)
                throw new NativeException($"bind AF_XDP socket to {where} in zero-copy mode", errno);
        }
        sa.Flags = (ushort)(XdpConstants.XDP_USE_NEED_WAKEUP | XdpConstants.XDP_COPY | sg);
        if (Libc.bind(_fd, &sa, (uint)sizeof(SockaddrXdp)) != 0)
            throw BindError($"bind AF_XDP socket to {where} in copy mode{(sg != 0 ? " with multi-buffer (XDP_USE_SG, Linux 6.6 or later)" : "")}");
    }

    private static NativeException BindError(string what)
    {
        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        return new NativeException(errno == Errno.EBUSY ? what + " (another AF_XDP socket is bound to this queue)" : what, errno);
    }

    private static void SetOpt(int fd, int name, void* value, uint len, string what)
    {
        if (Libc.setsockopt(fd, Libc.SOL_XDP, name, value, len) != 0)
            throw NativeException.FromLastError($"setsockopt({what})");
    }

    private byte* Map(ulong length, long pgoff, string where)
    {
        nint p = Libc.mmap(0, (nuint)length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, _fd, pgoff);
        if (p == Libc.MAP_FAILED)
            throw NativeException.FromLastError($"mmap of ring 0x{pgoff:x} on {where}");
        _maps.Add((p, (nuint)length));
        return (byte*)p;
    }

    /// <summary>Asks the kernel to transmit what the TX ring holds (copy mode sends at most 32 frames per call).
    /// Returns 0, or the errno of a failure the caller may count (EAGAIN, EBUSY, ENOBUFS, ENETDOWN).</summary>
    public int KickTx()
    {
        if (Libc.sendto(_fd, null, 0, Libc.MSG_DONTWAIT, null, 0) >= 0)
            return 0;
        return System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
    }

    /// <summary>Wakes the kernel's RX processing when the fill ring asks for it (need_wakeup).</summary>
    public void WakeRx()
    {
        Libc.recvfrom(_fd, null, 0, Libc.MSG_DONTWAIT, null, null);
    }

    /// <summary>
    /// Busy polling: the socket's NAPI context is run by this process's syscalls on the socket (recvfrom, sendto)
    /// for up to <paramref name="microseconds"/> and <paramref name="budget"/> packets, preferred over the
    /// kernel's own scheduling of it (SO_PREFER_BUSY_POLL), instead of in softirq or a NAPI thread.
    /// </summary>
    public void EnableBusyPoll(int microseconds, int budget)
    {
        int one = 1;
        if (Libc.setsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_PREFER_BUSY_POLL, &one, sizeof(int)) != 0)
            throw NativeException.FromLastError($"setsockopt(SO_PREFER_BUSY_POLL) on {InterfaceName} queue {QueueId}");
        if (Libc.setsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_BUSY_POLL, &microseconds, sizeof(int)) != 0)
            throw NativeException.FromLastError($"setsockopt(SO_BUSY_POLL, {microseconds}) on {InterfaceName} queue {QueueId}");
        if (Libc.setsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_BUSY_POLL_BUDGET, &budget, sizeof(int)) != 0)
            throw NativeException.FromLastError($"setsockopt(SO_BUSY_POLL_BUDGET, {budget}) on {InterfaceName} queue {QueueId}");
    }

    /// <summary>Closed (its interface went away): no statistics to read.</summary>
    public bool IsClosed => _fd < 0;

    /// <summary>The kernel's per-socket counters.</summary>
    public XdpStatistics GetStatistics()
    {
        XdpStatistics st;
        uint len = (uint)sizeof(XdpStatistics);
        if (Libc.getsockopt(_fd, Libc.SOL_XDP, XdpConstants.XDP_STATISTICS, &st, &len) != 0)
            throw NativeException.FromLastError($"getsockopt(XDP_STATISTICS) on {InterfaceName} queue {QueueId}");
        return st;
    }

    public void Dispose()
    {
        foreach (var (addr, len) in _maps)
            Libc.munmap(addr, len);
        _maps.Clear();
        if (_fd >= 0)
        {
            Libc.close(_fd);
            _fd = -1;
        }
    }
}
