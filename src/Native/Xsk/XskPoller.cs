using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>Sleeps in poll() until any of a fixed set of sockets has RX frames, or a timeout passes.</summary>
public sealed unsafe class XskPoller
{
    private readonly Libc.PollFd[] _fds;

    public XskPoller(IReadOnlyList<XskSocket> sockets, Wakeup? wakeup = null)
    {
        _fds = new Libc.PollFd[sockets.Count + (wakeup != null ? 1 : 0)];
        for (int i = 0; i < sockets.Count; i++)
            _fds[i] = new Libc.PollFd { Fd = sockets[i].Fd, Events = Libc.POLLIN };
        if (wakeup != null)
            _fds[^1] = new Libc.PollFd { Fd = wakeup.Fd, Events = Libc.POLLIN };
        _wakeup = wakeup;
    }

    private readonly Wakeup? _wakeup;

    /// <summary>Returns the number of ready sockets, 0 on timeout or interruption.</summary>
    public int Wait(int timeoutMs)
    {
        fixed (Libc.PollFd* p = _fds)
        {
            int n = Libc.poll(p, (nuint)_fds.Length, timeoutMs);
            if (n >= 0)
            {
                if (_wakeup != null && (_fds[^1].Revents & Libc.POLLIN) != 0)
                    _wakeup.Clear();
                return n;
            }
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == Errno.EINTR)
                return 0;
            throw new NativeException("poll on AF_XDP sockets", errno);
        }
    }
}
