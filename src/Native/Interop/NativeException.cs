using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>A failed system or library call: what we tried, on what, and the error the kernel or library gave.</summary>
public sealed class NativeException : Exception
{
    public NativeException(string operation, int errno)
        : this(operation, new Errno(errno))
    {
    }

    public NativeException(string operation, Errno error)
        : base($"{operation}: {error}")
    {
        Error = error;
    }

    /// <summary>The error, as the C library names it.</summary>
    public Errno Error { get; }

    /// <summary>Throws with the errno of the last P/Invoke call marked SetLastError.</summary>
    public static NativeException FromLastError(string operation) => new(operation, Errno.Last);
}
