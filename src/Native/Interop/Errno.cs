using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>
/// An errno value as a type: its number, its symbolic name and the C library's text ("Device or resource busy
/// (EBUSY)"). The constants are the values the code acts on; calls that return -errno give
/// <see cref="FromNegative"/>, calls that set errno give <see cref="Last"/>.
/// </summary>
public readonly record struct Errno(int Value)
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ERANGE = 34;
    public const int E2BIG = 7;
    public const int EOPNOTSUPP = 95;
    public const int ENETDOWN = 100;
    public const int ENETUNREACH = 101;
    public const int ENOBUFS = 105;
    public const int EHOSTUNREACH = 113;

    /// <summary>The errno of the last P/Invoke call marked SetLastError.</summary>
    public static Errno Last => new(Marshal.GetLastPInvokeError());

    /// <summary>The error of a call that returns 0 or -errno.</summary>
    public static Errno FromNegative(int result) => new(-result);

    /// <summary>The symbolic name (EBUSY), or "errno N" for one the code does not name.</summary>
    public string Name => Value switch
    {
        EPERM => "EPERM", ENOENT => "ENOENT", EINTR => "EINTR", ENXIO => "ENXIO", EBADF => "EBADF", EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM", EACCES => "EACCES", EFAULT => "EFAULT", EBUSY => "EBUSY", EEXIST => "EEXIST", ENODEV => "ENODEV",
        EINVAL => "EINVAL", ERANGE => "ERANGE", E2BIG => "E2BIG", EOPNOTSUPP => "EOPNOTSUPP", ENETDOWN => "ENETDOWN",
        ENETUNREACH => "ENETUNREACH", ENOBUFS => "ENOBUFS", EHOSTUNREACH => "EHOSTUNREACH",
        _ => $"errno {Value}",
    };

    /// <summary>The C library's text for it.</summary>
    public string Message => Marshal.GetPInvokeErrorMessage(Value);

    public override string ToString() => $"{Message} ({Name})";
}
