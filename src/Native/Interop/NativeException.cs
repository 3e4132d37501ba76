using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>A failed system or library call: what we tried, on what, and the errno text.</summary>
public sealed class NativeException : Exception
{
    public NativeException(string operation, int errno)
        : base($"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Errno = errno;
    }

    public int Errno { get; }

    /// <summary>Throws with the errno of the last P/Invoke call marked SetLastError.</summary>
    public static NativeException FromLastError(string operation) => new(operation, Marshal.GetLastPInvokeError());
}

/// <summary>errno values we act on.</summary>
public static class Errno
{
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int ENXIO = 6;
    public const int EAGAIN = 11;
    public const int ENOBUFS = 105;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ERANGE = 34;
    public const int ENETDOWN = 100;
    public const int ENETUNREACH = 101;
    public const int EHOSTUNREACH = 113;
    public const int EOPNOTSUPP = 95;
}
