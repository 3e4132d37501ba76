using System.Runtime.InteropServices;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>libxdp's struct xsk_umem: a UMEM registration, deleted (xsk_umem__delete) when the handle goes. Every socket
/// that shares it must be deleted first (libxdp refuses otherwise, and the handle then leaves it).</summary>
internal sealed class XskUmemHandle : SafeHandle
{
    public XskUmemHandle()
        : base(0, ownsHandle: true)
    {
    }

    public XskUmemHandle(nint umem)
        : base(0, ownsHandle: true) => SetHandle(umem);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => LibXdp.xsk_umem__delete(handle) == 0;
}

/// <summary>libxdp's struct xsk_socket: an AF_XDP socket with its mapped rings, deleted (xsk_socket__delete: rings
/// unmapped, descriptor closed) when the handle goes.</summary>
internal sealed class XskSocketHandle : SafeHandle
{
    public XskSocketHandle()
        : base(0, ownsHandle: true)
    {
    }

    public XskSocketHandle(nint xsk)
        : base(0, ownsHandle: true) => SetHandle(xsk);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        LibXdp.xsk_socket__delete(handle);
        return true;
    }
}
