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

/// <summary>
/// The loaded steering program (bpf/zonlb_xdp.c) and its maps. One instance serves every interface of the
/// process: it is attached to each, and the maps say which frames go to which AF_XDP socket.
/// Everything it attached is detached by <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class XdpProgram : IDisposable
{
    private nint _obj;
    private readonly int _progFd;
    private readonly int _xsksMap, _ifSlotsMap, _servicesMap, _natMap, _statsMap, _ownerMap, _fragMap;
    private readonly Dictionary<int, (string Name, uint Flags)> _attached = new();

    static XdpProgram()
    {
        // libbpf prints to stderr by default; its messages are repeated in our exceptions instead.
        LibBpf.libbpf_set_print(0);
    }

    private XdpProgram(nint obj, int progFd, int xsks, int ifSlots, int services, int nat, int stats, int owner, int frag)
    {
        _fragMap = frag;
        _ownerMap = owner;
        _obj = obj;
        _progFd = progFd;
        _xsksMap = xsks;
        _ifSlotsMap = ifSlots;
        _servicesMap = services;
        _natMap = nat;
        _statsMap = stats;
    }

    /// <summary>Loaded as an xdp.frags program (see <see cref="Load"/>).</summary>
    public bool MultiBuffer { get; private set; }

    /// <summary>The compiled object shipped beside the assembly (bpf/zonlb_xdp.o).</summary>
    public static string DefaultObjectPath => BpfObjectFile.PathOf("zonlb_xdp.o");

    /// <param name="multiBuffer">Load it as an xdp.frags program (BPF_F_XDP_HAS_FRAGS): it then attaches to
    /// interfaces whose frames exceed one page (a veth whose peer's MTU is above 3,506), and redirects such frames
    /// to sockets bound with XDP_USE_SG. It reads only the first buffer, which holds the headers.</param>
    public static XdpProgram Load(string? objectPath = null, bool multiBuffer = false)
    {
        string path = objectPath ?? DefaultObjectPath;
        nint obj = BpfObjectFile.OpenAndLoad(path, "bpf/zonlb_xdp.c",
            "is the kernel's BPF verifier refusing it, or is CAP_BPF/CAP_PERFMON or RLIMIT_MEMLOCK missing?",
            SteeringAbi.ProgramName, multiBuffer ? LibBpf.BPF_F_XDP_HAS_FRAGS : 0);
        try
        {
            nint prog = BpfObjectFile.Program(obj, SteeringAbi.ProgramName);
            var p = new XdpProgram(obj, LibBpf.bpf_program__fd(prog), MapFd(obj, "xsks_map"), MapFd(obj, "if_slots"),
                MapFd(obj, "services"), MapFd(obj, "nat_addrs"), MapFd(obj, "xdp_stats"), MapFd(obj, "owner"), MapFd(obj, "frag_addrs"));
            p.MultiBuffer = multiBuffer;
            uint key = 0, pid = (uint)Environment.ProcessId;
            Update(p._ownerMap, &key, &pid, "owner");
            return p;
        }
        catch
        {
            LibBpf.bpf_object__close(obj);
            throw;
        }
    }

    private static int MapFd(nint obj, string name) => BpfObjectFile.MapFd(obj, name);

    /// <summary>Attaches to an interface; fails (and attaches nothing) if another XDP program is already there.
    /// Returns the mode actually used.</summary>
    public XdpAttachMode Attach(string ifName, int ifIndex, XdpAttachMode mode)
    {
        if (mode is XdpAttachMode.Auto or XdpAttachMode.Native)
        {
            uint flags = LibBpf.XDP_FLAGS_UPDATE_IF_NOEXIST | LibBpf.XDP_FLAGS_DRV_MODE;
            int err = LibBpf.bpf_xdp_attach(ifIndex, _progFd, flags, 0);
            if (err == 0)
            {
                _attached[ifIndex] = (ifName, flags);
                return XdpAttachMode.Native;
            }
            if (mode == XdpAttachMode.Native || -err != Errno.EOPNOTSUPP)
                throw AttachError(ifName, ifIndex, -err, "native");
        }
        uint skb = LibBpf.XDP_FLAGS_UPDATE_IF_NOEXIST | LibBpf.XDP_FLAGS_SKB_MODE;
        int e = LibBpf.bpf_xdp_attach(ifIndex, _progFd, skb, 0);
        if (e != 0)
            throw AttachError(ifName, ifIndex, -e, "generic");
        _attached[ifIndex] = (ifName, skb);
        return XdpAttachMode.Generic;
    }

    private NativeException AttachError(string ifName, int ifIndex, int errno, string mode)
    {
        string hint = errno switch
        {
            Errno.EBUSY or Errno.EEXIST =>
                $" — another XDP program is attached (id {QueryAttachedId(ifIndex)}); remove it with 'ip link set dev {ifName} xdp off' if it is a stale one of ours",
            // veth answers ERANGE when its peer's MTU is above what a single-buffer program can see (3,506 bytes
            // with 4 KiB pages on x86-64); other drivers answer it for their own MTU
            Errno.ERANGE => MultiBuffer
                ? $" — the MTU of {ifName} or of its veth peer is too large even for multi-buffer XDP"
                : $" — the MTU of {ifName} or of its veth peer is too large for XDP without multi-buffer: at most 3,506 bytes on a veth's peer. Set engine.multi_buffer = true, or lower the MTU (e.g. 'ip link set dev {ifName} mtu 1500', and the same on its peer)",
            _ => "",
        };
        return new NativeException($"attach XDP program to {ifName} in {mode} mode{hint}", errno);
    }

    /// <summary>The id of the XDP program attached to an interface in any mode, 0 when none.</summary>
    public static uint QueryAttachedId(int ifIndex)
    {
        uint id = 0;
        return LibBpf.bpf_xdp_query_id(ifIndex, 0, &id) == 0 ? id : 0;
    }

    /// <summary>The name of a loaded BPF program (bpf_prog_info.name), or null.</summary>
    public static string? ProgramName(uint id)
    {
        int fd = LibBpf.bpf_prog_get_fd_by_id(id);
        if (fd < 0)
            return null;
        try
        {
            // struct bpf_prog_info: ... char name[BPF_OBJ_NAME_LEN] at offset 64
            var info = stackalloc byte[256];
            new Span<byte>(info, 256).Clear();
            uint len = 256;
            if (LibBpf.bpf_obj_get_info_by_fd(fd, info, &len) != 0)
                return null;
            return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)(info + 64));
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>What is attached to an interface, as zonlb-afxdp sees it.</summary>
    public static (uint Id, string? Name, uint OwnerPid, bool OwnerAlive) Inspect(int ifIndex)
    {
        uint id = QueryAttachedId(ifIndex);
        if (id == 0)
            return (0, null, 0, false);
        string? name = ProgramName(id);
        uint pid = name == SteeringAbi.ProgramName ? OwnerPid(id) : 0;
        bool alive = pid != 0 && Directory.Exists($"/proc/{pid}");
        return (id, name, pid, alive);
    }

    /// <summary>The PID recorded in the owner map of an attached zonlb_xdp program (by program id), or 0 when
    /// the program has none (not ours, or from a version without it).</summary>
    public static uint OwnerPid(uint progId)
    {
        int fd = LibBpf.bpf_prog_get_fd_by_id(progId);
        if (fd < 0)
            return 0;
        try
        {
            var ids = stackalloc uint[16];
            var info = stackalloc byte[256];
            new Span<byte>(info, 256).Clear();
            *(uint*)(info + 52) = 16;          // nr_map_ids
            *(ulong*)(info + 56) = (ulong)ids; // map_ids
            uint len = 256;
            if (LibBpf.bpf_obj_get_info_by_fd(fd, info, &len) != 0)
                return 0;
            uint n = Math.Min(*(uint*)(info + 52), 16);
            for (uint i = 0; i < n; i++)
            {
                int mfd = LibBpf.bpf_map_get_fd_by_id(ids[i]);
                if (mfd < 0)
                    continue;
                try
                {
                    // struct bpf_map_info { u32 type, id, key_size, value_size, max_entries, map_flags; char name[16]; ... }
                    var minfo = stackalloc byte[128];
                    new Span<byte>(minfo, 128).Clear();
                    uint mlen = 128;
                    if (LibBpf.bpf_obj_get_info_by_fd(mfd, minfo, &mlen) != 0)
                        continue;
                    if (System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)(minfo + 24)) != "owner")
                        continue;
                    uint key = 0, pid = 0;
                    return LibBpf.bpf_map_lookup_elem(mfd, &key, &pid) == 0 ? pid : 0;
                }
                finally
                {
                    Libc.close(mfd);
                }
            }
            return 0;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Detaches whatever XDP program is attached to an interface (used to clear a stale one of ours).</summary>
    public static void DetachAny(string ifName, int ifIndex)
    {
        // a program is attached in one mode; detaching in the other is a no-op
        foreach (uint mode in new[] { LibBpf.XDP_FLAGS_DRV_MODE, LibBpf.XDP_FLAGS_SKB_MODE })
        {
            int err = LibBpf.bpf_xdp_detach(ifIndex, mode, 0);
            if (err != 0 && -err != Errno.EINVAL && -err != Errno.EOPNOTSUPP)
                throw new NativeException($"detach the XDP program of {ifName}", -err);
        }
        if (QueryAttachedId(ifIndex) != 0)
            throw new InvalidOperationException($"the XDP program of {ifName} could not be detached");
    }

    /// <summary>The libbpf version this process runs on ("v1.1").</summary>
    public static string LibBpfVersion => System.Runtime.InteropServices.Marshal.PtrToStringUTF8(LibBpf.libbpf_version_string()) ?? "unknown";

    /// <summary>Forgets an interface that was deleted (its program went with it).</summary>
    public void Forget(int ifIndex) => _attached.Remove(ifIndex);

    public void Detach(int ifIndex)
    {
        if (_attached.Remove(ifIndex, out var a))
            LibBpf.bpf_xdp_detach(ifIndex, a.Flags & ~LibBpf.XDP_FLAGS_UPDATE_IF_NOEXIST, 0);
    }

    /// <summary>Steers frames arriving on ifIndex queue q to XSKMAP slot firstSlot + q.</summary>
    public void SetInterfaceSlots(int ifIndex, uint firstSlot)
    {
        uint key = (uint)ifIndex;
        Update(_ifSlotsMap, &key, &firstSlot, "if_slots");
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
        var key = new ServiceKey { Addr = MapAddress.From(vip), PortBe = BinaryPrimitives.ReverseEndianness(port), Proto = proto };
        byte one = 1;
        Update(_servicesMap, &key, &one, "services");
    }

    /// <summary>Stops steering a service's frames (they go to the kernel again).</summary>
    public void RemoveService(IPAddress vip, byte proto, ushort port)
    {
        var key = new ServiceKey { Addr = MapAddress.From(vip), PortBe = BinaryPrimitives.ReverseEndianness(port), Proto = proto };
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

    /// <summary>Later IP fragments (no ports) to this address go to our sockets: a VIP or a SNAT address.</summary>
    public void AddFragmentAddress(IPAddress addr)
    {
        var key = MapAddress.From(addr);
        byte one = 1;
        Update(_fragMap, &key, &one, "frag_addrs");
    }

    /// <summary>The sum over CPUs of one of the program's counters.</summary>
    public ulong ReadCounter(XdpProgramCounter counter)
    {
        uint key = (uint)counter;
        int cpus = LibBpf.libbpf_num_possible_cpus();
        if (cpus <= 0)
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
        int err = LibBpf.bpf_map_update_elem(mapFd, key, value, LibBpf.BPF_ANY);
        if (err != 0)
            throw new NativeException($"bpf_map_update_elem({map})", -err);
    }

    public void Dispose()
    {
        foreach (int ifIndex in _attached.Keys.ToArray())
            Detach(ifIndex);
        if (_obj != 0)
        {
            LibBpf.bpf_object__close(_obj);
            _obj = 0;
        }
    }
}
