using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>An eventfd another thread signals to wake a worker sleeping in <see cref="XskPoller.Wait"/>.</summary>
public sealed unsafe class Wakeup : IDisposable
{
    public Wakeup()
    {
        Fd = Libc.eventfd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);
        if (Fd < 0)
            throw NativeException.FromLastError("eventfd");
    }

    public int Fd { get; private set; }

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
        if (Fd >= 0)
        {
            Libc.close(Fd);
            Fd = -1;
        }
    }
}
