using System.Runtime.InteropServices;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>
/// One registration of the UMEM area with the kernel, made by libxdp (xsk_umem__create), for the sockets of one
/// interface (xsk_socket__create_shared): the first of them binds the registration's own descriptor and takes its
/// fill and completion rings, the others share it. Every interface registers the same area (the kernel pins the
/// pages once per registration), so a frame received on one interface is sent on another from the same bytes, and an
/// interface that goes away takes only its own registration with it: the kernel shares a UMEM only through a bound
/// socket, which one registration for all interfaces would lose with the first interface.
/// </summary>
public sealed unsafe class XskUmem : IDisposable
{
    private readonly XskUmemHandle _handle;
    /// <summary>The first socket's fill and completion rings, where libxdp put them (it keeps a pointer to this memory).</summary>
    private XskRingView* _rings;
    private int _sockets;

    private XskUmem(XskUmemHandle handle, XskRingView* rings, Umem area, uint ringSize)
    {
        _handle = handle;
        _rings = rings;
        Area = area;
        RingSize = ringSize;
    }

    public Umem Area { get; }
    public uint RingSize { get; }

    /// <summary>Registers the area, with fill and completion rings of ringSize entries per socket.</summary>
    public static XskUmem Register(Umem area, uint ringSize, string forWhat)
    {
        LibXdpMessages.Install();
        var rings = (XskRingView*)NativeMemory.AllocZeroed(2, (nuint)sizeof(XskRingView));
        var config = new XskUmemConfig { FillSize = ringSize, CompSize = ringSize, FrameSize = (uint)area.FrameSize, FrameHeadroom = 0, Flags = 0 };
        nint umem;
        int err = LibXdp.xsk_umem__create(&umem, (void*)area.Area, area.Length, &rings[0], &rings[1], &config);
        if (err != 0)
        {
            NativeMemory.Free(rings);
            throw new NativeException($"xsk_umem__create ({area.Length >> 20} MiB UMEM for {forWhat}){LibXdpHint()}", Errno.FromNegative(err));
        }
        return new XskUmem(new XskUmemHandle(umem), rings, area, ringSize);
    }

    internal nint Handle => _handle.DangerousGetHandle();

    /// <summary>The rings to pass for a new socket: the registration's own for its first socket, else null (the socket
    /// gets its own).</summary>
    internal bool TakeFirstRings(out XskRingView* fill, out XskRingView* comp)
    {
        fill = &_rings[0];
        comp = &_rings[1];
        return _sockets == 0;
    }

    internal void SocketCreated() => _sockets++;

    internal void SocketDeleted() => _sockets--;

    internal static string LibXdpHint() => LibXdpMessages.TakeLastWarning() is string w ? $" (libxdp: {w})" : "";

    public void Dispose()
    {
        if (_handle.IsClosed)
            return;
        _handle.Dispose();
        // libxdp keeps the rings' memory until the registration is deleted
        if (_rings != null)
        {
            NativeMemory.Free(_rings);
            _rings = null;
        }
    }
}
