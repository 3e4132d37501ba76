using System.Runtime.InteropServices;
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
/// One AF_XDP socket bound to (interface, queue), with its own fill, completion, RX and TX rings, created by libxdp
/// (xsk_socket__create_shared) on its interface's <see cref="XskUmem"/>; libxdp loads no program of its own for it
/// (ours steers). The rings are accessed from C# (<see cref="XskProducerRing"/>, <see cref="XskConsumerRing"/>) over
/// the memory libxdp mapped, once their addresses have been checked against the kernel's offsets.
/// </summary>
public sealed unsafe class XskSocket : IDisposable
{
    private readonly XskSocketHandle _handle;
    private readonly XskUmem _umem;
    /// <summary>RX, TX, and (but for the registration's first socket) fill and completion rings as libxdp filled them.</summary>
    private XskRingView* _views;
    private readonly int _fd;
    private bool _disposed;

    private XskSocket(XskSocketHandle handle, XskUmem umem, XskRingView* views, string ifName, int ifIndex, int queue)
    {
        _handle = handle;
        _umem = umem;
        _views = views;
        _fd = LibXdp.xsk_socket__fd(handle.DangerousGetHandle());
        InterfaceName = ifName;
        InterfaceIndex = ifIndex;
        QueueId = queue;
    }

    /// <summary>The socket's descriptor (owned by libxdp's socket: valid until <see cref="Dispose"/>).</summary>
    public int Fd => _fd;
    public string InterfaceName { get; }
    public int InterfaceIndex { get; }
    public int QueueId { get; }
    public bool ZeroCopy { get; private set; }
    public XskProducerRing Fill { get; private set; } = null!;
    public XskConsumerRing Completion { get; private set; } = null!;
    public XskConsumerRing Rx { get; private set; } = null!;
    public XskProducerRing Tx { get; private set; } = null!;

    /// <summary>Creates and binds a socket on its interface's UMEM registration. The registration's first socket binds in
    /// the mode asked (<see cref="XskBindMode.Auto"/>: zero-copy where the driver has it, else copy); the others share
    /// its mode.</summary>
    /// <param name="multiBuffer">Bind with XDP_USE_SG: a frame larger than a UMEM chunk arrives (and is sent) as
    /// several descriptors, XDP_PKT_CONTD on all but the last. Sockets sharing the registration inherit it.</param>
    public static XskSocket Create(XskUmem umem, string ifName, int ifIndex, int queue, uint ringSize, XskBindMode mode, bool multiBuffer = false)
    {
        string where = $"{ifName} queue {queue}";
        bool first = umem.TakeFirstRings(out var umemFill, out var umemComp);
        var views = (XskRingView*)NativeMemory.AllocZeroed(4, (nuint)sizeof(XskRingView));
        XskRingView* fill = first ? umemFill : &views[2], comp = first ? umemComp : &views[3];
        ushort sg = multiBuffer ? XdpConstants.XDP_USE_SG : (ushort)0;
        nint xsk = 0;
        int err = -Errno.EOPNOTSUPP;
        bool zeroCopy = false;
        if (first && mode != XskBindMode.Copy)
        {
            err = Create(&xsk, ifName, queue, umem, views, fill, comp, ringSize, (ushort)(XdpConstants.XDP_USE_NEED_WAKEUP | XdpConstants.XDP_ZEROCOPY | sg));
            zeroCopy = err == 0;
            if (err != 0 && (mode == XskBindMode.ZeroCopy || err != -Errno.EOPNOTSUPP))
            {
                NativeMemory.Free(views);
                throw Error($"bind AF_XDP socket to {where} in zero-copy mode", err);
            }
        }
        if (err != 0)
        {
            err = Create(&xsk, ifName, queue, umem, views, fill, comp, ringSize, (ushort)(XdpConstants.XDP_USE_NEED_WAKEUP | XdpConstants.XDP_COPY | sg));
            if (err != 0)
            {
                NativeMemory.Free(views);
                string copy = first ? $" in copy mode{(sg != 0 ? " with multi-buffer (XDP_USE_SG, Linux 6.6 or later)" : "")}" : " (shared UMEM)";
                throw Error($"bind AF_XDP socket to {where}{copy}", err);
            }
        }
        umem.SocketCreated();
        var s = new XskSocket(new XskSocketHandle(xsk), umem, views, ifName, ifIndex, queue);
        try
        {
            s.MapRings(fill, comp, where);
            s.ZeroCopy = first ? zeroCopy : s.BoundZeroCopy(where);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    private static int Create(nint* xsk, string ifName, int queue, XskUmem umem, XskRingView* views, XskRingView* fill, XskRingView* comp,
        uint ringSize, ushort bindFlags)
    {
        var config = new XskSocketConfig
        {
            RxSize = ringSize, TxSize = ringSize, LibXdpFlags = LibXdp.XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, XdpFlags = 0, BindFlags = bindFlags,
        };
        return LibXdp.xsk_socket__create_shared(xsk, ifName, (uint)queue, umem.Handle, &views[0], &views[1], fill, comp, &config);
    }

    private static NativeException Error(string what, int err)
    {
        var errno = Errno.FromNegative(err);
        string hint = errno.Value == Errno.EBUSY ? " (another AF_XDP socket is bound to this queue)" : "";
        return new NativeException(what + hint + XskUmem.LibXdpHint(), errno);
    }

    /// <summary>Our ring objects over what libxdp mapped, each checked against the kernel's offsets.</summary>
    private void MapRings(XskRingView* fill, XskRingView* comp, string where)
    {
        XdpMmapOffsets off;
        uint optlen = (uint)sizeof(XdpMmapOffsets);
        if (Libc.getsockopt(_fd, Libc.SOL_XDP, XdpConstants.XDP_MMAP_OFFSETS, &off, &optlen) != 0)
            throw NativeException.FromLastError($"getsockopt(XDP_MMAP_OFFSETS) on {where}");
        XskRing.CheckLayout(_views[0], off.Rx, sizeof(XdpDesc), $"RX ring of {where}");
        XskRing.CheckLayout(_views[1], off.Tx, sizeof(XdpDesc), $"TX ring of {where}");
        XskRing.CheckLayout(*fill, off.Fill, 8, $"fill ring of {where}");
        XskRing.CheckLayout(*comp, off.Completion, 8, $"completion ring of {where}");
        Rx = new XskConsumerRing(_views[0], sizeof(XdpDesc));
        Tx = new XskProducerRing(_views[1], sizeof(XdpDesc));
        Fill = new XskProducerRing(*fill, 8);
        Completion = new XskConsumerRing(*comp, 8);
    }

    /// <summary>Whether the socket was bound in zero-copy mode (XDP_OPTIONS).</summary>
    private bool BoundZeroCopy(string where)
    {
        uint options = 0, len = 4;
        if (Libc.getsockopt(_fd, Libc.SOL_XDP, XdpConstants.XDP_OPTIONS, &options, &len) != 0)
            throw NativeException.FromLastError($"getsockopt(XDP_OPTIONS) on {where}");
        return (options & XdpConstants.XDP_OPTIONS_ZEROCOPY) != 0;
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
    public bool IsClosed => _disposed;

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
        if (_disposed)
            return;
        _disposed = true;
        _handle.Dispose();
        _umem.SocketDeleted();
        if (_views != null)
        {
            NativeMemory.Free(_views); // libxdp forgets these once the socket is deleted
            _views = null;
        }
    }
}
