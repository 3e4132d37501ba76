using ZonLb.Native.Interop;

namespace ZonLb.Native.Bpf;

/// <summary>
/// Whether libxdp can attach through its multi-program dispatcher here: it keeps the dispatcher's state (pinned links)
/// in a BPF filesystem, at <c>$LIBXDP_BPFFS</c> or /sys/fs/bpf, and is told not to by <c>LIBXDP_SKIP_DISPATCHER=1</c>.
/// Without it libxdp attaches the program alone (the kernel's single program per interface and mode). Note that
/// <c>ip netns exec</c> mounts a fresh /sys, without the host's bpffs.
/// </summary>
public static unsafe class XdpDispatcher
{
    /// <summary>BPF_FS_MAGIC (statfs f_type of a bpffs).</summary>
    private const long BpfFsMagic = 0xcafe4a11;

    /// <summary>What libxdp will do: use the dispatcher (and where its state lives), or why not and what would let it.</summary>
    public readonly record struct State(bool Usable, string BpfFs, string Reason, string Remedy);

    public static State Availability()
    {
        string dir = Environment.GetEnvironmentVariable("LIBXDP_BPFFS") is { Length: > 0 } d ? d : "/sys/fs/bpf";
        if (Environment.GetEnvironmentVariable("LIBXDP_SKIP_DISPATCHER") == "1")
            return new(false, dir, "LIBXDP_SKIP_DISPATCHER=1", "unset it to share interfaces");
        if (!KernelLoadsFreplace())
            return new(false, dir, "this kernel refuses freplace (BPF_PROG_TYPE_EXT) programs, which the dispatcher links its programs as",
                "a kernel with BPF trampolines, not locked down against them, lifts it");
        if (!IsBpfFs(dir))
            return new(false, dir, $"no bpffs at {dir}",
                $"mount one to share interfaces: 'mount -t bpf bpf {dir}', or point LIBXDP_BPFFS at one");
        return new(true, dir, "", "");
    }

    /// <summary>Whether the kernel loads freplace programs (libbpf's probe: a kernel without BPF trampolines, or one whose
    /// lockdown or security module forbids them, answers no).</summary>
    public static bool KernelLoadsFreplace() => LibBpf.libbpf_probe_bpf_prog_type(LibBpf.BPF_PROG_TYPE_EXT, 0) == 1;

    /// <summary>Whether path is the root of a mounted BPF filesystem.</summary>
    public static bool IsBpfFs(string path)
    {
        var buf = stackalloc long[32]; // struct statfs is 120 bytes on 64-bit Linux
        return Libc.statfs(path, buf) == 0 && (buf[0] & 0xFFFFFFFF) == BpfFsMagic;
    }
}
