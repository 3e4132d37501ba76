using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>
/// What libxdp says (it prints warnings and notes to stderr by default): its warnings and informational messages go
/// to <see cref="Sink"/> (the engine's log, prefixed "libxdp: "), and the last warning of the calling thread is kept
/// for the error that follows it (<see cref="TakeLastWarning"/>). Each distinct message is logged once; debug
/// messages are dropped.
/// </summary>
public static unsafe class LibXdpMessages
{
    private static readonly object Gate = new();
    private static bool _installed;
    [ThreadStatic] private static string? _lastWarning;
    private static readonly HashSet<string> Said = new();

    /// <summary>Where libxdp's messages go; null drops them.</summary>
    public static Action<string>? Sink { get; set; }

    /// <summary>Routes libxdp's messages here (once per process; before the first libxdp call that may print).</summary>
    internal static void Install()
    {
        lock (Gate)
        {
            if (_installed)
                return;
            LibXdp.libxdp_set_print(&Print);
            _installed = true;
        }
    }

    /// <summary>The last warning libxdp gave on this thread since the last call, or null.</summary>
    internal static string? TakeLastWarning()
    {
        string? w = _lastWarning;
        _lastWarning = null;
        return w;
    }

    [UnmanagedCallersOnly]
    private static int Print(int level, byte* format, nint args)
    {
        if (level > LibXdp.LIBXDP_INFO)
            return 0;
        const int Size = 1024;
        byte* buffer = stackalloc byte[Size];
        int n = Libc.vsnprintf(buffer, Size, format, args);
        if (n <= 0)
            return 0;
        string text = (Marshal.PtrToStringUTF8((nint)buffer) ?? "").Trim();
        if (text.StartsWith("libxdp: ", StringComparison.Ordinal))
            text = text.Substring("libxdp: ".Length);
        if (text.Length == 0)
            return n;
        if (level == LibXdp.LIBXDP_WARN)
            _lastWarning = text;
        lock (Gate)
        {
            if (!Said.Add(text))
                return n; // each distinct message once: libxdp repeats itself for every interface
        }
        try
        {
            Sink?.Invoke("libxdp: " + text);
        }
        catch
        {
            // a log that throws must not unwind into libxdp
        }
        return n;
    }
}
