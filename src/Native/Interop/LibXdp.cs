using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>
/// libxdp 1.x (xdp-tools): XDP programs attached through its multi-program dispatcher (or alone, where the dispatcher
/// is unavailable), and AF_XDP UMEM and socket set-up. Calls that return an int return 0 or -errno; calls that return
/// a pointer return NULL or an error pointer, which <see cref="libxdp_get_error"/> decodes. The ring access is not
/// here: libxdp's ring functions are inline in its header, and ours are in <c>Xsk/</c>.
/// </summary>
internal static unsafe partial class LibXdp
{
    // enum xdp_attach_mode
    public const int XDP_MODE_UNSPEC = 0;
    public const int XDP_MODE_NATIVE = 1;
    public const int XDP_MODE_SKB = 2;
    public const int XDP_MODE_HW = 3;

    // enum libxdp_print_level
    public const int LIBXDP_WARN = 0;
    public const int LIBXDP_INFO = 1;
    public const int LIBXDP_DEBUG = 2;

    /// <summary>xsk_socket_config.libxdp_flags: do not load libxdp's own XSK program (we steer with ours).</summary>
    public const uint XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD = 1;

    // typedef int (*libxdp_print_fn_t)(enum libxdp_print_level level, const char *, va_list ap);
    // libxdp_print_fn_t libxdp_set_print(libxdp_print_fn_t fn);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint libxdp_set_print(delegate* unmanaged<int, byte*, nint, int> fn);

    // long libxdp_get_error(const void *ptr);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint libxdp_get_error(nint ptr);

    // struct xdp_program *xdp_program__from_bpf_obj(struct bpf_object *obj, const char *section_name);
    [LibraryImport(NativeLibraries.LibXdp, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint xdp_program__from_bpf_obj(nint obj, string? sectionName);

    // struct xdp_program *xdp_program__from_id(__u32 prog_id);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint xdp_program__from_id(uint progId);

    // void xdp_program__close(struct xdp_program *xdp_prog);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial void xdp_program__close(nint prog);

    // struct bpf_object *xdp_program__bpf_obj(struct xdp_program *xdp_prog);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint xdp_program__bpf_obj(nint prog);

    // const char *xdp_program__name(const struct xdp_program *xdp_prog);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint xdp_program__name(nint prog);

    // uint32_t xdp_program__id(const struct xdp_program *xdp_prog);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial uint xdp_program__id(nint prog);

    // unsigned int xdp_program__run_prio(const struct xdp_program *xdp_prog);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial uint xdp_program__run_prio(nint prog);

    // int xdp_program__set_xdp_frags_support(struct xdp_program *prog, bool frags);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xdp_program__set_xdp_frags_support(nint prog, [MarshalAs(UnmanagedType.U1)] bool frags);

    // int xdp_program__attach(struct xdp_program *xdp_prog, int ifindex, enum xdp_attach_mode mode, unsigned int flags);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xdp_program__attach(nint prog, int ifIndex, int mode, uint flags);

    // int xdp_program__detach(struct xdp_program *xdp_prog, int ifindex, enum xdp_attach_mode mode, unsigned int flags);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xdp_program__detach(nint prog, int ifIndex, int mode, uint flags);

    // struct xdp_multiprog *xdp_multiprog__get_from_ifindex(int ifindex);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint xdp_multiprog__get_from_ifindex(int ifIndex);

    // struct xdp_program *xdp_multiprog__next_prog(const struct xdp_program *prog, const struct xdp_multiprog *mp);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint xdp_multiprog__next_prog(nint prog, nint mp);

    // struct xdp_program *xdp_multiprog__main_prog(const struct xdp_multiprog *mp);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial nint xdp_multiprog__main_prog(nint mp);

    // bool xdp_multiprog__is_legacy(const struct xdp_multiprog *mp);
    [LibraryImport(NativeLibraries.LibXdp)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool xdp_multiprog__is_legacy(nint mp);

    // enum xdp_attach_mode xdp_multiprog__attach_mode(const struct xdp_multiprog *mp);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xdp_multiprog__attach_mode(nint mp);

    // int xdp_multiprog__program_count(const struct xdp_multiprog *mp);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xdp_multiprog__program_count(nint mp);

    // void xdp_multiprog__close(struct xdp_multiprog *mp);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial void xdp_multiprog__close(nint mp);

    // int xsk_umem__create(struct xsk_umem **umem, void *umem_area, __u64 size, struct xsk_ring_prod *fill,
    //                      struct xsk_ring_cons *comp, const struct xsk_umem_config *config);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xsk_umem__create(nint* umem, void* area, ulong size, XskRingView* fill, XskRingView* comp, XskUmemConfig* config);

    // int xsk_umem__delete(struct xsk_umem *umem);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xsk_umem__delete(nint umem);

    // int xsk_socket__create_shared(struct xsk_socket **xsk_ptr, const char *ifname, __u32 queue_id, struct xsk_umem *umem,
    //     struct xsk_ring_cons *rx, struct xsk_ring_prod *tx, struct xsk_ring_prod *fill, struct xsk_ring_cons *comp,
    //     const struct xsk_socket_config *config);
    [LibraryImport(NativeLibraries.LibXdp, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int xsk_socket__create_shared(nint* xsk, string ifName, uint queueId, nint umem,
        XskRingView* rx, XskRingView* tx, XskRingView* fill, XskRingView* comp, XskSocketConfig* config);

    // int xsk_socket__fd(const struct xsk_socket *xsk);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial int xsk_socket__fd(nint xsk);

    // void xsk_socket__delete(struct xsk_socket *xsk);
    [LibraryImport(NativeLibraries.LibXdp)]
    public static partial void xsk_socket__delete(nint xsk);

    /// <summary>The error a libxdp pointer result carries (0 for a valid pointer, -errno otherwise).</summary>
    public static int ErrorOf(nint ptr) => (int)libxdp_get_error(ptr);
}

/// <summary>struct xsk_ring_prod / xsk_ring_cons (DEFINE_XSK_RING in xdp/xsk.h): where libxdp put a ring it mapped.
/// Filled by libxdp, kept at a fixed address for the socket's lifetime (libxdp keeps pointers to it).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct XskRingView
{
    public uint CachedProd;
    public uint CachedCons;
    public uint Mask;
    public uint Size;
    public uint* Producer;
    public uint* Consumer;
    public void* Ring;
    public uint* Flags;
}

/// <summary>struct xsk_umem_config (xdp/xsk.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XskUmemConfig
{
    public uint FillSize;
    public uint CompSize;
    public uint FrameSize;
    public uint FrameHeadroom;
    public uint Flags;
}

/// <summary>struct xsk_socket_config (xdp/xsk.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XskSocketConfig
{
    public uint RxSize;
    public uint TxSize;
    public uint LibXdpFlags;
    public uint XdpFlags;
    public ushort BindFlags;
}
