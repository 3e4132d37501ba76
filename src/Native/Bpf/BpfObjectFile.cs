using ZonLb.Native.Interop;

namespace ZonLb.Native.Bpf;

/// <summary>Opens and loads one of our compiled BPF objects (shipped under bpf/ beside the assembly).</summary>
internal static class BpfObjectFile
{
    public static string PathOf(string fileName) => Path.Combine(AppContext.BaseDirectory, "bpf", fileName);

    /// <summary>The loaded libbpf object; the caller closes it (bpf_object__close).</summary>
    /// <param name="loadHint">What to suspect when the kernel refuses to load it.</param>
    /// <param name="program">A program whose load flags get <paramref name="programFlags"/> added (e.g.
    /// BPF_F_XDP_HAS_FRAGS), or null.</param>
    public static nint OpenAndLoad(string path, string source, string loadHint, string? program = null, uint programFlags = 0)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"BPF object {path} not found (built from {source} by the ZonLb.Native project)", path);
        nint obj = LibBpf.bpf_object__open_file(path, 0);
        if (obj == 0)
            throw NativeException.FromLastError($"bpf_object__open_file({path})");
        if (program != null && programFlags != 0)
        {
            nint prog = LibBpf.bpf_object__find_program_by_name(obj, program);
            int e = prog == 0 ? Errno.ENOENT : -LibBpf.bpf_program__set_flags(prog, LibBpf.bpf_program__flags(prog) | programFlags);
            if (e != 0)
            {
                LibBpf.bpf_object__close(obj);
                throw new NativeException($"bpf_program__set_flags({program}, 0x{programFlags:x}) in {path}", e);
            }
        }
        int err = LibBpf.bpf_object__load(obj);
        if (err != 0)
        {
            LibBpf.bpf_object__close(obj);
            throw new NativeException($"bpf_object__load({path}) ({loadHint})", -err);
        }
        return obj;
    }

    public static int MapFd(nint obj, string name)
    {
        int fd = LibBpf.bpf_object__find_map_fd_by_name(obj, name);
        if (fd < 0)
            throw new InvalidOperationException($"the BPF object has no map named {name}");
        return fd;
    }

    public static nint Program(nint obj, string name)
    {
        nint prog = LibBpf.bpf_object__find_program_by_name(obj, name);
        if (prog == 0)
            throw new InvalidOperationException($"the BPF object has no program named {name}");
        return prog;
    }
}
