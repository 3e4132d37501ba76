using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>An eventfd another thread signals to wake a worker sleeping in <see cref="XskPoller.Wait"/>.</summary>
public sealed unsafe class Wakeup : IDisposable
{
    private readonly FileDescriptorHandle _eventFd;

    public Wakeup()
    {
        _eventFd = new FileDescriptorHandle(Libc.eventfd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC));
        if (_eventFd.IsInvalid)
            throw NativeException.FromLastError("eventfd");
        _fd = _eventFd.Fd;
    }

    private volatile int _fd;

    /// <summary>The eventfd; -1 once disposed (a signal then goes nowhere, never to a descriptor reused since).</summary>
    public int Fd => _fd;

    /// <summary>Wakes the sleeper (one write syscall).</summary>
    public void Signal()
    {
        ulong one = 1;
        Libc.write(Fd, &one, 8);
    }

    internal void Clear()
    {
        ulong v;
        Libc.read(Fd, &v, 8);
    }

    public void Dispose()
    {
        _fd = -1;
        _eventFd.Dispose();
    }
}
