namespace ZonLb.Native.Interop;

/// <summary>The shared libraries we bind to, named in one place.</summary>
internal static class NativeLibraries
{
    public const string Libc = "libc";
    public const string LibBpf = "libbpf.so.1";
    public const string LibXdp = "libxdp.so.1";
}
