using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>A file descriptor this process owns (an eventfd, a BPF program or map descriptor it opened by id): closed
/// once, when the handle is disposed or finalized. -1 is invalid; 0 is a descriptor like any other.</summary>
public sealed class FileDescriptorHandle : SafeHandle
{
    public FileDescriptorHandle()
        : base(-1, ownsHandle: true)
    {
    }

    /// <summary>Takes ownership of fd (a negative value gives an invalid handle).</summary>
    public FileDescriptorHandle(int fd)
        : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor, for calls on it while the handle is alive.</summary>
    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
