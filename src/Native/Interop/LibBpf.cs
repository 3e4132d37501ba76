using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>libbpf 1.x calls used to open the BPF objects, fill their maps, load the drop tracer and inspect programs
/// (libxdp attaches the XDP program: <see cref="LibXdp"/>).
/// In libbpf 1.x, pointer-returning calls return NULL and set errno; int-returning calls return -errno.</summary>
internal static unsafe partial class LibBpf
{
    public const ulong BPF_ANY = 0;
    /// <summary>bpf_attr.prog_flags: the XDP program takes frames of several buffers (what SEC("xdp.frags") sets).</summary>
    public const uint BPF_F_XDP_HAS_FRAGS = 1 << 5;

    // struct bpf_object *bpf_object__open_file(const char *path, const struct bpf_object_open_opts *opts);
    [LibraryImport(NativeLibraries.LibBpf, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint bpf_object__open_file(string path, nint opts);

    // int bpf_object__load(struct bpf_object *obj);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_object__load(nint obj);

    // void bpf_object__close(struct bpf_object *obj);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial void bpf_object__close(nint obj);

    // struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj, const char *name);
    [LibraryImport(NativeLibraries.LibBpf, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint bpf_object__find_program_by_name(nint obj, string name);

    // __u32 bpf_program__flags(const struct bpf_program *prog);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial uint bpf_program__flags(nint prog);

    // int bpf_program__set_flags(struct bpf_program *prog, __u32 flags); before bpf_object__load
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_program__set_flags(nint prog, uint flags);

    // int bpf_program__fd(const struct bpf_program *prog);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_program__fd(nint prog);

    // int bpf_object__find_map_fd_by_name(const struct bpf_object *obj, const char *name);
    [LibraryImport(NativeLibraries.LibBpf, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int bpf_object__find_map_fd_by_name(nint obj, string name);

    // int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

    // int bpf_map_lookup_elem(int fd, const void *key, void *value);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

    // int bpf_map_delete_elem(int fd, const void *key);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_map_delete_elem(int fd, void* key);

    // int bpf_xdp_query_id(int ifindex, int flags, __u32 *prog_id);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_xdp_query_id(int ifindex, int flags, uint* progId);

    // struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
    [LibraryImport(NativeLibraries.LibBpf, SetLastError = true)]
    public static partial nint bpf_program__attach(nint prog);

    // int bpf_link__destroy(struct bpf_link *link);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_link__destroy(nint link);

    // struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb, void *ctx, const struct ring_buffer_opts *opts);
    [LibraryImport(NativeLibraries.LibBpf, SetLastError = true)]
    public static partial nint ring_buffer__new(int mapFd, delegate* unmanaged<void*, void*, nuint, int> sampleCb, void* ctx, nint opts);

    // int ring_buffer__poll(struct ring_buffer *rb, int timeout_ms);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int ring_buffer__poll(nint rb, int timeoutMs);

    // void ring_buffer__free(struct ring_buffer *rb);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial void ring_buffer__free(nint rb);

    /// <summary>enum bpf_prog_type: BPF_PROG_TYPE_EXT (freplace), what libxdp's dispatcher links its programs as.</summary>
    public const int BPF_PROG_TYPE_EXT = 28;

    // int libbpf_probe_bpf_prog_type(enum bpf_prog_type prog_type, const void *opts); 1 supported, 0 not, <0 error
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int libbpf_probe_bpf_prog_type(int progType, nint opts);

    // const char *libbpf_version_string(void);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial nint libbpf_version_string();

    // int bpf_prog_get_fd_by_id(__u32 id);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_prog_get_fd_by_id(uint id);

    // int bpf_map_get_fd_by_id(__u32 id);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_map_get_fd_by_id(uint id);

    // int bpf_obj_get_info_by_fd(int bpf_fd, void *info, __u32 *info_len);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int bpf_obj_get_info_by_fd(int fd, void* info, uint* infoLen);

    // int libbpf_num_possible_cpus(void);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial int libbpf_num_possible_cpus();

    // typedef int (*libbpf_print_fn_t)(enum libbpf_print_level level, const char *, va_list ap);
    // libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
    [LibraryImport(NativeLibraries.LibBpf)]
    public static partial nint libbpf_set_print(nint fn);
}
