using System.Runtime.InteropServices;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Bpf;

/// <summary>libxdp's struct xdp_program (with the libbpf object it wraps, for our own), closed when the handle goes.
/// Closing does not detach: attachments are the dispatcher's (or the interface's) and outlive the handle.</summary>
internal sealed class XdpProgramHandle : SafeHandle
{
    public XdpProgramHandle()
        : base(0, ownsHandle: true)
    {
    }

    public XdpProgramHandle(nint prog)
        : base(0, ownsHandle: true) => SetHandle(prog);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        LibXdp.xdp_program__close(handle);
        return true;
    }
}

/// <summary>libxdp's struct xdp_multiprog: what is attached to one interface (a dispatcher and its programs, or one
/// program alone), as read at one moment.</summary>
internal sealed class XdpMultiprogHandle : SafeHandle
{
    public XdpMultiprogHandle()
        : base(0, ownsHandle: true)
    {
    }

    public XdpMultiprogHandle(nint mp)
        : base(0, ownsHandle: true) => SetHandle(mp);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        LibXdp.xdp_multiprog__close(handle);
        return true;
    }
}
