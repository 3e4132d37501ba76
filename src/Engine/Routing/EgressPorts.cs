using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Routing;

/// <summary>Where a frame leaves: the next hop's MAC (48 bits, wire order) and the interface to send it on.</summary>
internal readonly record struct EgressHop(ulong Mac, int IfIndex);

/// <summary>
/// One worker's view of the way out: the attached interfaces (ports) with their MACs and MTUs, the VLAN interfaces
/// stacked on them, and the next-hop cache. Answers, for a destination, which port a frame leaves by, with which
/// tag, to which MAC, and writes the MACs. Frames can only leave through attached ports: a route through any other
/// interface is a drop (<see cref="DropReason.EgressNotAttached"/>).
/// </summary>
internal sealed class EgressPorts
{
    private int[] _ifIndex = Array.Empty<int>();
    /// <summary>Each port's MAC as one 48-bit number (bytes in wire order, little-endian), written with two stores.</summary>
    private ulong[] _macWord = Array.Empty<ulong>();
    /// <summary>Egress MTU of each port (IP bytes); int.MaxValue until told.</summary>
    private int[] _mtu = Array.Empty<int>();
    /// <summary>VLAN interfaces by ifindex: the port they leave by and their VLAN id.</summary>
    private Dictionary<int, (int Port, ushort Vlan)> _vlanOf = new();

    public EgressPorts(IReadOnlyList<(int IfIndex, byte[] Mac)> ports, NextHopCache nextHops)
    {
        NextHops = nextHops;
        Update(ports);
    }

    public NextHopCache NextHops { get; }

    /// <summary>Takes new interface identities (an interface deleted and created again) and forgets next hops.</summary>
    public void Update(IReadOnlyList<(int IfIndex, byte[] Mac)> ports)
    {
        var ifIndex = new int[ports.Count];
        var mac = new ulong[ports.Count];
        var mtu = new int[ports.Count];
        for (int i = 0; i < ports.Count; i++)
        {
            ifIndex[i] = ports[i].IfIndex;
            mac[i] = MacWord(ports[i].Mac);
            mtu[i] = int.MaxValue;
        }
        (_ifIndex, _macWord, _mtu) = (ifIndex, mac, mtu);
        NextHops.Clear();
    }

    /// <summary>The MTU of an attached interface: larger packets toward it are not sent.</summary>
    public void SetMtu(int ifIndex, int mtu)
    {
        int port = PortOf(ifIndex);
        if (port >= 0)
            _mtu[port] = mtu;
    }

    /// <summary>VLAN interfaces (by ifindex) stacked on attached ports, with their VLAN ids: a route through one
    /// leaves by its parent port, tagged.</summary>
    public void SetVlans(IReadOnlyDictionary<int, (int ParentIfIndex, ushort Vlan)> vlans)
    {
        var map = new Dictionary<int, (int, ushort)>();
        foreach (var (ifIndex, (parent, vlan)) in vlans)
        {
            int port = PortOf(parent);
            if (port >= 0)
                map[ifIndex] = (port, vlan);
        }
        _vlanOf = map;
        NextHops.Clear();
    }

    /// <summary>The egress MTU of port (IP bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int MtuOf(int port) => _mtu[port];

    /// <summary>The attached port with this ifindex, or -1 (a plain loop: there are a handful of ports).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PortOf(int ifIndex)
    {
        var ports = _ifIndex;
        for (int i = 0; i < ports.Length; i++)
            if (ports[i] == ifIndex)
                return i;
        return -1;
    }

    /// <summary>
    /// The next hop toward destination (slotHint: the caller's remembered cache slot, checked and updated), the
    /// attached port it leaves by and the VLAN tag it leaves with (a route through a VLAN interface on a port: the
    /// parent port, tagged). reason: <see cref="DropReason.NoRoute"/>, or <see cref="DropReason.EgressNotAttached"/>
    /// for a route through an interface we are not attached to. A pending answer whose route is not known yet has
    /// no port (-1): the frame waits.
    /// </summary>
    public NextHopState Lookup(in IpAddr destination, long now, ref int slotHint, out EgressHop hop, out int port, out ushort vlan,
        out DropReason reason)
    {
        ref readonly var next = ref NextHops.Find(destination, now, ref slotHint);
        hop = new EgressHop(next.Mac, next.IfIndex);
        var state = next.State;
        port = -1;
        vlan = 0;
        reason = DropReason.None;
        if (state == NextHopState.NoRoute)
        {
            reason = DropReason.NoRoute;
            return state;
        }
        if (state == NextHopState.Pending && hop.IfIndex == 0)
            return state; // the route itself is being asked for
        port = PortOf(hop.IfIndex);
        if (port >= 0)
            return state;
        if (_vlanOf.Count > 0 && _vlanOf.TryGetValue(hop.IfIndex, out var v))
        {
            port = v.Port;
            vlan = v.Vlan;
            hop = new EgressHop(hop.Mac, _ifIndex[port]); // sent on the parent's socket
        }
        else
        {
            reason = DropReason.EgressNotAttached;
        }
        return state;
    }

    /// <summary>The fast lane's question: the resolved, fresh next hop a slot hint names for destination, on an
    /// attached port (untagged) whose MTU an IP packet of ipLength bytes fits. False for anything else, asking no one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryResolvedAt(int slotHint, in IpAddr destination, long now, int ipLength, out EgressHop hop, out int port)
    {
        if (NextHops.TryResolvedAt(slotHint, destination, now, out ulong mac, out int ifIndex))
        {
            port = PortOf(ifIndex);
            hop = new EgressHop(mac, ifIndex);
            return port >= 0 && ipLength <= _mtu[port];
        }
        hop = default;
        port = -1;
        return false;
    }

    /// <summary>Writes the next hop's MAC as destination and the port's as source.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteMacs(Span<byte> frame, in EgressHop hop, int port)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)hop.Mac);
        BinaryPrimitives.WriteUInt16LittleEndian(frame.Slice(4), (ushort)(hop.Mac >> 32));
        ulong mac = _macWord[port];
        BinaryPrimitives.WriteUInt32LittleEndian(frame.Slice(6), (uint)mac);
        BinaryPrimitives.WriteUInt16LittleEndian(frame.Slice(10), (ushort)(mac >> 32));
    }

    private static ulong MacWord(byte[] mac)
    {
        Span<byte> eight = stackalloc byte[8];
        mac.CopyTo(eight);
        return BinaryPrimitives.ReadUInt64LittleEndian(eight);
    }
}
