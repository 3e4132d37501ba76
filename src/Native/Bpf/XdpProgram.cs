using System.Buffers.Binary;
using System.Net;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Bpf;

/// <summary>How the XDP program is attached to an interface.</summary>
public enum XdpAttachMode
{
    /// <summary>Native (driver) mode, falling back to generic (skb) mode where the driver has none.</summary>
    Auto,
    Native,
    Generic,
}

/// <summary>How the program sits on an interface: in libxdp's dispatcher (beside other programs), or alone.</summary>
public readonly record struct XdpAttachment(XdpAttachMode Mode, bool Dispatcher, int Programs)
{
    public override string ToString() => Dispatcher
        ? $"{Mode.ToString().ToLowerInvariant()} XDP through libxdp's dispatcher ({Programs} program(s) on the interface)"
        : $"{Mode.ToString().ToLowerInvariant()} XDP, alone (no dispatcher)";
}

/// <summary>
/// The steering program (bpf/zonlb_xdp.c) and its maps, attached through libxdp: with its multi-program dispatcher
/// where it can (then other XDP programs share the interface, each run in turn while the previous one passes the
/// frame), alone where the dispatcher is unavailable (no bpffs, a kernel without freplace, or
/// <c>LIBXDP_SKIP_DISPATCHER=1</c>). One instance serves every interface of the process, and the maps say which frames
/// go to which AF_XDP socket. libxdp loads the program at its first attach (as a dispatcher's component or as a plain
/// XDP program), so the maps exist from then on: the caller attaches, then fills them; until a service is in them,
/// every frame passes. Everything it attached is detached by <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class XdpProgram : IDisposable
{
    private readonly XdpProgramHandle _prog;
    private int _xsksMap = -1, _ifSlotsMap = -1, _servicesMap = -1, _natMap = -1, _statsMap = -1, _ownerMap = -1;
    private readonly Dictionary<int, (string Name, int Mode)> _attached = new();

    static XdpProgram()
    {
        // libbpf prints to stderr by default; its messages are repeated in our exceptions instead.
        LibBpf.libbpf_set_print(0);
    }

    private XdpProgram(XdpProgramHandle prog, bool multiBuffer)
    {
        _prog = prog;
        MultiBuffer = multiBuffer;
    }

    /// <summary>AF_XDP sockets the program can steer to at once (its XSKMAP's size).</summary>
    public const int MaxSockets = SteeringAbi.MaxXsks;

    /// <summary>Opened as an xdp.frags program (see <see cref="Open"/>).</summary>
    public bool MultiBuffer { get; }

    /// <summary>Loaded (at the first attach): its maps can be filled.</summary>
    public bool IsLoaded => _xsksMap >= 0;

    /// <summary>The compiled object shipped beside the assembly (bpf/zonlb_xdp.o).</summary>
    public static string DefaultObjectPath => BpfObjectFile.PathOf("zonlb_xdp.o");

    /// <param name="multiBuffer">An xdp.frags program (BPF_F_XDP_HAS_FRAGS, in a dispatcher that takes frags): it then
    /// attaches to interfaces whose frames exceed one page (a veth whose peer's MTU is above 3,506), and redirects such
    /// frames to sockets bound with XDP_USE_SG. It reads only the first buffer, which holds the headers.</param>
    public static XdpProgram Open(string? objectPath = null, bool multiBuffer = false)
    {
        string path = objectPath ?? DefaultObjectPath;
        if (!File.Exists(path))
            throw new FileNotFoundException($"BPF object {path} not found (built from bpf/zonlb_xdp.c by the ZonLb.Native project)", path);
        LibXdpMessages.Install();
        nint obj = LibBpf.bpf_object__open_file(path, 0);
        if (obj == 0)
            throw NativeException.FromLastError($"bpf_object__open_file({path})");
        nint prog = LibXdp.xdp_program__from_bpf_obj(obj, "xdp");
        int err = LibXdp.ErrorOf(prog);
        if (prog == 0 || err != 0)
        {
            LibBpf.bpf_object__close(obj);
            throw new NativeException($"xdp_program__from_bpf_obj({path}){Hint()}", Errno.FromNegative(err != 0 ? err : -Errno.EINVAL));
        }
        var p = new XdpProgram(new XdpProgramHandle(prog), multiBuffer) { _obj = obj };
        if (multiBuffer && (err = LibXdp.xdp_program__set_xdp_frags_support(prog, true)) != 0)
        {
            p.Dispose();
            throw new NativeException("xdp_program__set_xdp_frags_support", Errno.FromNegative(err));
        }
        return p;
    }

    /// <summary>The libbpf object the program was opened from (xdp_program__from_bpf_obj leaves it ours to close).</summary>
    private nint _obj;

    private static string Hint() => LibXdpMessages.TakeLastWarning() is string w ? $" (libxdp: {w})" : "";

    /// <summary>Attaches to an interface in the mode asked (<see cref="XdpAttachMode.Auto"/>: native, else generic where
    /// the driver has no native XDP), through libxdp's dispatcher where it can. Another program already there shares
    /// the interface if it too was attached through the dispatcher; one attached without it is refused. The first
    /// attach loads the program and opens its maps.</summary>
    public XdpAttachment Attach(string ifName, int ifIndex, XdpAttachMode mode)
    {
        int used = mode == XdpAttachMode.Generic ? LibXdp.XDP_MODE_SKB : LibXdp.XDP_MODE_NATIVE;
        int err = LibXdp.xdp_program__attach(Handle, ifIndex, used, 0);
        if (err == -Errno.EOPNOTSUPP && mode == XdpAttachMode.Auto)
        {
            used = LibXdp.XDP_MODE_SKB;
            err = LibXdp.xdp_program__attach(Handle, ifIndex, used, 0);
        }
        if (err != 0)
            throw AttachError(ifName, ifIndex, -err, used == LibXdp.XDP_MODE_SKB ? "generic" : "native");
        _attached[ifIndex] = (ifName, used);
        if (!IsLoaded)
            OpenMaps();
        var mp = Describe(ifIndex);
        return mp ?? new XdpAttachment(used == LibXdp.XDP_MODE_SKB ? XdpAttachMode.Generic : XdpAttachMode.Native, false, 1);
    }

    private nint Handle => _prog.DangerousGetHandle();

    /// <summary>After the first attach: the maps' descriptors, and this process recorded as the program's owner.</summary>
    private void OpenMaps()
    {
        nint obj = LibXdp.xdp_program__bpf_obj(Handle);
        _xsksMap = MapFd(obj, "xsks_map");
        _ifSlotsMap = MapFd(obj, "if_slots");
        _servicesMap = MapFd(obj, "services");
        _natMap = MapFd(obj, "nat_addrs");
        _statsMap = MapFd(obj, "xdp_stats");
        _ownerMap = MapFd(obj, "owner");
        uint key = 0;
        var owner = new Owner { Pid = (uint)Environment.ProcessId, StartTime = ProcessStartTime(Environment.ProcessId) };
        Update(_ownerMap, &key, &owner, "owner");
    }

    private static int MapFd(nint obj, string name) => BpfObjectFile.MapFd(obj, name);

    /// <summary>How XDP sits on an interface now (mode, dispatcher or not, programs), or null when nothing is attached
    /// or libxdp cannot tell.</summary>
    public static XdpAttachment? Describe(int ifIndex)
    {
        using var mp = Multiprog(ifIndex);
        if (mp == null)
            return null;
        nint h = mp.DangerousGetHandle();
        var mode = LibXdp.xdp_multiprog__attach_mode(h) == LibXdp.XDP_MODE_SKB ? XdpAttachMode.Generic : XdpAttachMode.Native;
        bool legacy = LibXdp.xdp_multiprog__is_legacy(h);
        return new XdpAttachment(mode, !legacy, legacy ? 1 : LibXdp.xdp_multiprog__program_count(h));
    }

    /// <summary>libxdp's view of an interface's XDP programs, or null when none is attached (or it cannot be read).</summary>
    private static XdpMultiprogHandle? Multiprog(int ifIndex)
    {
        LibXdpMessages.Install();
        nint mp = LibXdp.xdp_multiprog__get_from_ifindex(ifIndex);
        if (mp == 0 || LibXdp.ErrorOf(mp) != 0)
            return null;
        return new XdpMultiprogHandle(mp);
    }

    private NativeException AttachError(string ifName, int ifIndex, int errno, string mode)
    {
        string hint = errno switch
        {
            Errno.EBUSY or Errno.EEXIST =>
                $" — another XDP program is attached without libxdp's dispatcher (id {QueryAttachedId(ifIndex)}), and cannot share the interface: " +
                $"load it with xdp-loader (which uses the dispatcher), or remove it with 'ip link set dev {ifName} xdp off' if it is a stale one",
            // veth answers ERANGE when its peer's MTU is above what a single-buffer program can see (3,506 bytes
            // with 4 KiB pages on x86-64); other drivers answer it for their own MTU
            Errno.ERANGE => MultiBuffer
                ? $" — the MTU of {ifName} or of its veth peer is too large even for multi-buffer XDP"
                : $" — the MTU of {ifName} or of its veth peer is too large for XDP without multi-buffer: at most 3,506 bytes on a veth's peer. Set engine.multi_buffer = true, or lower the MTU (e.g. 'ip link set dev {ifName} mtu 1500', and the same on its peer)",
            Errno.EINVAL when MultiBuffer =>
                " — the dispatcher already on the interface was built for programs without multi-buffer support, which cannot run beside an xdp.frags one",
            _ => "",
        };
        return new NativeException($"attach XDP program to {ifName} in {mode} mode{hint}{Hint()}", errno);
    }

    /// <summary>The id of the XDP program attached to an interface in any mode (a dispatcher's, with one), 0 when none.</summary>
    public static uint QueryAttachedId(int ifIndex)
    {
        uint id = 0;
        return LibBpf.bpf_xdp_query_id(ifIndex, 0, &id) == 0 ? id : 0;
    }

    /// <summary>The name of a loaded BPF program (bpf_prog_info.name), or null.</summary>
    public static string? ProgramName(uint id)
    {
        using var fd = new FileDescriptorHandle(LibBpf.bpf_prog_get_fd_by_id(id));
        if (fd.IsInvalid)
            return null;
        // struct bpf_prog_info: ... char name[BPF_OBJ_NAME_LEN] at offset 64
        var info = stackalloc byte[256];
        new Span<byte>(info, 256).Clear();
        uint len = 256;
        if (LibBpf.bpf_obj_get_info_by_fd(fd.Fd, info, &len) != 0)
            return null;
        return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)(info + 64));
    }

    /// <summary>The process recorded in the owner map of an attached zonlb_xdp program (by program id): its PID (0 when
    /// the program has none: not ours) and start time (0 from a version that recorded only the PID).</summary>
    private static Owner OwnerOf(uint progId)
    {
        using var fd = new FileDescriptorHandle(LibBpf.bpf_prog_get_fd_by_id(progId));
        if (fd.IsInvalid)
            return default;
        var ids = stackalloc uint[16];
        var info = stackalloc byte[256];
        new Span<byte>(info, 256).Clear();
        *(uint*)(info + 52) = 16;          // nr_map_ids
        *(ulong*)(info + 56) = (ulong)ids; // map_ids
        uint len = 256;
        if (LibBpf.bpf_obj_get_info_by_fd(fd.Fd, info, &len) != 0)
            return default;
        uint n = Math.Min(*(uint*)(info + 52), 16);
        for (uint i = 0; i < n; i++)
        {
            using var map = new FileDescriptorHandle(LibBpf.bpf_map_get_fd_by_id(ids[i]));
            if (map.IsInvalid)
                continue;
            // struct bpf_map_info { u32 type, id, key_size, value_size, max_entries, map_flags; char name[16]; ... }
            var minfo = stackalloc byte[128];
            new Span<byte>(minfo, 128).Clear();
            uint mlen = 128;
            if (LibBpf.bpf_obj_get_info_by_fd(map.Fd, minfo, &mlen) != 0 ||
                System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)(minfo + 24)) != "owner")
                continue;
            uint key = 0;
            var value = stackalloc byte[64]; // the owner value, whatever its size in the program's version (4 or 16)
            new Span<byte>(value, 64).Clear();
            return LibBpf.bpf_map_lookup_elem(map.Fd, &key, value) == 0 ? *(Owner*)value : default;
        }
        return default;
    }

    /// <summary>A process's start time (clock ticks after boot, /proc/PID/stat field 22), 0 when it is gone.</summary>
    internal static ulong ProcessStartTime(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // the command name (field 2) is in parentheses and may hold spaces: count fields after its closing one
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return ulong.Parse(fields[22 - 3], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 0;
        }
    }

    /// <summary>Whether the recorded owner still runs: its PID exists and, when its start time was recorded, started
    /// then (a PID reused by a later process is not the owner).</summary>
    private static bool OwnerRuns(in Owner owner)
    {
        if (owner.Pid == 0)
            return false;
        ulong started = ProcessStartTime((int)owner.Pid);
        return started != 0 && (owner.StartTime == 0 || owner.StartTime == started);
    }

    /// <summary>One XDP program attached to an interface, as zonlb-afxdp sees it: ours (zonlb_xdp) records its owner's PID.</summary>
    public readonly record struct AttachedProgram(uint Id, string? Name, uint OwnerPid, bool OwnerAlive)
    {
        public bool IsOurs => Name == SteeringAbi.ProgramName;
    }

    /// <summary>The programs attached to an interface: those in its dispatcher, or the one attached alone (Dispatcher false);
    /// empty when none. A program whose name cannot be read (without CAP_SYS_ADMIN) has a null name.</summary>
    public static (bool Dispatcher, List<AttachedProgram> Programs) Inspect(int ifIndex)
    {
        var list = new List<AttachedProgram>();
        uint mainId = QueryAttachedId(ifIndex);
        if (mainId == 0)
            return (false, list);
        using var mp = Multiprog(ifIndex);
        if (mp == null || LibXdp.xdp_multiprog__is_legacy(mp.DangerousGetHandle()))
        {
            list.Add(Program(mainId));
            return (false, list);
        }
        nint h = mp.DangerousGetHandle();
        for (nint p = LibXdp.xdp_multiprog__next_prog(0, h); p != 0; p = LibXdp.xdp_multiprog__next_prog(p, h))
            list.Add(Program(LibXdp.xdp_program__id(p)));
        return (true, list);
    }

    private static AttachedProgram Program(uint id)
    {
        string? name = ProgramName(id);
        var owner = name == SteeringAbi.ProgramName ? OwnerOf(id) : default;
        return new AttachedProgram(id, name, owner.Pid, OwnerRuns(owner));
    }

    /// <summary>Detaches one program from an interface (a stale one of ours, left by a process that is gone): from the
    /// dispatcher, leaving the others there, or the program attached alone.</summary>
    public static void DetachStale(string ifName, int ifIndex, uint progId)
    {
        using var mp = Multiprog(ifIndex) ?? throw new InvalidOperationException($"the XDP programs of {ifName} could not be read{Hint()}");
        nint h = mp.DangerousGetHandle();
        nint target = 0;
        if (LibXdp.xdp_multiprog__is_legacy(h))
            target = LibXdp.xdp_multiprog__main_prog(h);
        else
            for (nint p = LibXdp.xdp_multiprog__next_prog(0, h); p != 0 && target == 0; p = LibXdp.xdp_multiprog__next_prog(p, h))
                if (LibXdp.xdp_program__id(p) == progId)
                    target = p;
        if (target == 0 || LibXdp.xdp_program__id(target) != progId)
            throw new InvalidOperationException($"program id {progId} is no longer attached to {ifName}");
        int err = LibXdp.xdp_program__detach(target, ifIndex, LibXdp.xdp_multiprog__attach_mode(h), 0);
        if (err != 0)
            throw new NativeException($"detach the stale XDP program {progId} of {ifName}{Hint()}", Errno.FromNegative(err));
    }

    /// <summary>The libbpf version this process runs on ("v1.1").</summary>
    public static string LibBpfVersion => System.Runtime.InteropServices.Marshal.PtrToStringUTF8(LibBpf.libbpf_version_string()) ?? "unknown";

    /// <summary>Forgets an interface that was deleted (its program went with it).</summary>
    public void Forget(int ifIndex) => _attached.Remove(ifIndex);

    public void Detach(int ifIndex)
    {
        if (_attached.Remove(ifIndex, out var a))
            LibXdp.xdp_program__detach(Handle, ifIndex, a.Mode, 0);
    }

    /// <summary>Steers frames arriving on ifIndex queue q to XSKMAP slot firstSlot + q, for q below count (a frame on
    /// a higher queue, after the interface's queue count was raised, passes).</summary>
    public void SetInterfaceSlots(int ifIndex, uint firstSlot, int count)
    {
        uint key = (uint)ifIndex;
        var slots = new IfSlots { First = firstSlot, Count = (uint)count };
        Update(_ifSlotsMap, &key, &slots, "if_slots");
    }

    /// <summary>Stops steering an interface's frames (its sockets are gone).</summary>
    public void ClearInterfaceSlots(int ifIndex)
    {
        if (_ifSlotsMap < 0)
            return;
        uint key = (uint)ifIndex;
        LibBpf.bpf_map_delete_elem(_ifSlotsMap, &key);
    }

    /// <summary>Empties an XSKMAP slot: frames steered to it pass to the kernel (a stalled worker's queue).</summary>
    public void ClearSocket(uint slot)
    {
        if (_xsksMap < 0)
            return;
        LibBpf.bpf_map_delete_elem(_xsksMap, &slot);
    }

    public void SetSocket(uint slot, int xskFd)
    {
        if (slot >= SteeringAbi.MaxXsks)
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"at most {SteeringAbi.MaxXsks} AF_XDP sockets");
        int fd = xskFd;
        Update(_xsksMap, &slot, &fd, "xsks_map");
    }

    /// <summary>Frames to (vip, proto, port) go to our sockets; port 0 for ICMP echo; proto is the packet's (58 for ICMPv6).</summary>
    public void AddService(IPAddress vip, byte proto, ushort port)
    {
        var key = new SteeredServiceKey { Addr = MapAddress.From(vip), PortBe = BinaryPrimitives.ReverseEndianness(port), Proto = proto };
        byte one = 1;
        Update(_servicesMap, &key, &one, "services");
    }

    /// <summary>Stops steering a service's frames (they go to the kernel again).</summary>
    public void RemoveService(IPAddress vip, byte proto, ushort port)
    {
        var key = new SteeredServiceKey { Addr = MapAddress.From(vip), PortBe = BinaryPrimitives.ReverseEndianness(port), Proto = proto };
        if (_servicesMap < 0)
            return;
        int err = LibBpf.bpf_map_delete_elem(_servicesMap, &key);
        if (err != 0 && -err != Errno.ENOENT)
            throw new NativeException("bpf_map_delete_elem(services)", -err);
    }

    /// <summary>Frames to (address, proto) with a destination port (ICMP: echo id) in the range are replies to us.</summary>
    public void AddNatAddress(IPAddress addr, byte proto, ushort portMin, ushort portMax)
    {
        var key = new NatKey { Addr = MapAddress.From(addr), Proto = proto };
        var range = new NatRange { PortMin = portMin, PortMax = portMax };
        Update(_natMap, &key, &range, "nat_addrs");
    }

    /// <summary>The sum over CPUs of one of the program's counters.</summary>
    public ulong ReadCounter(XdpProgramCounter counter)
    {
        uint key = (uint)counter;
        int cpus = LibBpf.libbpf_num_possible_cpus();
        if (cpus <= 0 || _statsMap < 0)
            return 0;
        Span<ulong> perCpu = stackalloc ulong[cpus];
        fixed (ulong* p = perCpu)
        {
            if (LibBpf.bpf_map_lookup_elem(_statsMap, &key, p) != 0)
                return 0;
        }
        ulong sum = 0;
        foreach (ulong v in perCpu)
            sum += v;
        return sum;
    }

    private static void Update(int mapFd, void* key, void* value, string map)
    {
        if (mapFd < 0)
            throw new InvalidOperationException($"the steering program's map {map} is not open yet: attach the program first (libxdp loads it then)");
        int err = LibBpf.bpf_map_update_elem(mapFd, key, value, LibBpf.BPF_ANY);
        if (err != 0)
            throw new NativeException($"bpf_map_update_elem({map})", -err);
    }

    public void Dispose()
    {
        foreach (int ifIndex in _attached.Keys.ToArray())
            Detach(ifIndex);
        _prog.Dispose();
        if (_obj != 0)
        {
            LibBpf.bpf_object__close(_obj);
            _obj = 0;
        }
    }
}
