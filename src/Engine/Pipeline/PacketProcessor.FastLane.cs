using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>What a batch's prefetch pass needs of one frame: its flow's hash and the index it is looked up in
/// first (<see cref="PacketProcessor.PrefetchConnections"/>).</summary>
internal struct LookupHint
{
    public int Hash;
    public bool BackendSide;
    public bool Valid;
}

/// <summary>The fast lane for established flows, and the batch's first pass that gets lookups under way.</summary>
internal sealed partial class PacketProcessor
{
    /// <summary>From what table capacity a batch's lookups are prefetched (every table of the default size
    /// is). Gated on capacity, not on live connections: in the data path the table shares the core's caches
    /// with the UMEM (32 MiB by default) and the kernel's receive and transmit work, so even a thousand flows'
    /// slots and entries have left the L2 by the time a flow's next packet comes. Measured end to end
    /// (compare.sh, UDP 1 / 1024 flows, 3 runs each, both orders): 265-281k / 234-276k pps forwarded with this
    /// gate against 242-250k / 231-246k when gated on 16k live connections. A small table (unit tests,
    /// embedding with a few connections) is not prefetched.</summary>
    public const int PrefetchFromCapacity = 16384;

    /// <summary>
    /// Pass one of a worker's batch for a frame the fast lane may take: true when the frame is an untagged TCP or
    /// UDP packet, IPv4 without options and not a fragment or IPv6 without extension headers, with its flow's
    /// hash and the index the lane will probe in hint (for <see cref="PrefetchConnections"/>). Such a frame need
    /// not be parsed unless the lane declines it. Reads only what it must; <see cref="TryFastLane"/> checks the rest.
    /// </summary>
    public bool FastLaneCandidate(ReadOnlySpan<byte> frame, out LookupHint hint)
    {
        hint = default;
        if (frame.Length < Wire.EthernetHeader + Wire.IPv4MinHeader + 4)
            return false;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        byte protocol;
        IpAddr src, dst;
        int l4;
        if (etherType == Wire.EtherTypeIPv4)
        {
            if (frame[Wire.EthernetHeader] != 0x45 || (frame[Wire.EthernetHeader + 6] & 0x3F) != 0 || frame[Wire.EthernetHeader + 7] != 0)
                return false;
            protocol = frame[Wire.EthernetHeader + Wire.IpProto];
            src = IpAddr.ReadV4(frame.Slice(Wire.EthernetHeader + Wire.IpSrc));
            dst = IpAddr.ReadV4(frame.Slice(Wire.EthernetHeader + Wire.IpDst));
            l4 = Wire.EthernetHeader + Wire.IPv4MinHeader;
        }
        else if (etherType == Wire.EtherTypeIPv6 && frame.Length >= Wire.EthernetHeader + Wire.IPv6Header + 4 && frame[Wire.EthernetHeader] >> 4 == 6)
        {
            protocol = frame[Wire.EthernetHeader + Wire.Ip6NextHeader];
            src = IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Src));
            dst = IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Dst));
            l4 = Wire.EthernetHeader + Wire.IPv6Header;
        }
        else
        {
            return false;
        }
        if (protocol is not ((byte)IpProtocol.Tcp or (byte)IpProtocol.Udp))
            return false;
        ushort dport = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l4 + 2));
        hint.Hash = new FlowKey(src, dst, BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l4)), dport, (IpProtocol)protocol).GetHashCode();
        hint.BackendSide = dport >= _options.NatPortMin && dport <= _options.NatPortMax;
        hint.Valid = true;
        return true;
    }

    /// <summary>The lookup hint of a parsed frame (reasons: what <see cref="PacketParser.Parse(ReadOnlySpan{byte}, out ParsedPacket)"/> said of it),
    /// whose hash it also keeps in p for the lookup; not valid for a frame that is dropped, an ICMP error or a
    /// later fragment (not looked up by its own key).</summary>
    public LookupHint HintOf(ref ParsedPacket p, DropReason reason)
    {
        if (reason != DropReason.None || p.IsIcmpError || p.IsLaterFragment)
            return default;
        bool backendSide = ReplyLikely(in p);
        p.FlowHash = new FlowKey(p.SrcIp, p.DstIp, p.SrcPort, p.DstPort, p.Protocol).GetHashCode();
        p.HasFlowHash = true;
        return new LookupHint { Hash = p.FlowHash, BackendSide = backendSide, Valid = true };
    }

    /// <summary>
    /// Gets a batch's connection lookups under way before any of them is needed: prefetches each frame's index
    /// slot (in the index a packet of its kind is looked up first), then the entries those slots name. With a
    /// large table each lookup is a cache miss (DRAM at millions of entries); this way a batch's misses overlap
    /// instead of following one another. Does nothing for a small table.
    /// </summary>
    public void PrefetchConnections(ReadOnlySpan<LookupHint> hints)
    {
        if (_connections.Capacity < PrefetchFromCapacity)
            return;
        for (int i = 0; i < hints.Length; i++)
        {
            if (hints[i].Valid)
                _connections.PrefetchSlot(hints[i].Hash, hints[i].BackendSide);
        }
        for (int i = 0; i < hints.Length; i++)
        {
            if (hints[i].Valid)
                _connections.PrefetchEntry(hints[i].Hash, hints[i].BackendSide);
        }
    }

    /// <summary>
    /// The fast lane: a packet of an established TCP or UDP connection, the common case, forwarded from the
    /// frame's bytes without the general parse and its VLAN, fragment, extension-header and ICMP cases. It takes
    /// an untagged IPv4 packet without options, not a fragment, with a valid header checksum and a TTL above 1,
    /// or an untagged IPv6 packet whose next header is TCP or UDP with a hop limit above 1, whose connection
    /// (looked up in the one index its destination port points to) is full NAT and, for TCP, stays ESTABLISHED
    /// (no SYN, FIN or RST), and whose next hop the connection's cache hint still names, resolved and fresh, on
    /// an attached port whose MTU the packet fits. Such a packet gets exactly what the general path gives it
    /// (<c>FastLaneTests</c> runs both on the same frames and compares every byte and counter). For anything
    /// else it returns false having changed nothing, and the general path takes the frame.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // one compiled lane, IPv4 in it, IPv6 a call away
    public bool TryFastLane(Span<byte> frame, long now, out Forwarding f)
    {
        f = default;
        if (frame.Length < Wire.EthernetHeader + Wire.IPv4MinHeader + Wire.UdpHeader)
            return false;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        if (etherType == Wire.EtherTypeIPv4)
            return TryFastLaneV4(frame, now, ref f);
        if (etherType == Wire.EtherTypeIPv6)
            return TryFastLaneV6(frame, now, ref f);
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryFastLaneV4(Span<byte> frame, long now, ref Forwarding f)
    {
        const int L4 = Wire.EthernetHeader + Wire.IPv4MinHeader; // without options, the transport header is here
        // fixed offsets into the frame, few values alive at once: this method is large, and what the JIT cannot
        // keep in registers goes to the stack and back
        ulong w0 = MemoryMarshal.Read<ulong>(frame.Slice(Wire.EthernetHeader));      // version/IHL, TOS, total length, id, fragment
        ulong w1 = MemoryMarshal.Read<ulong>(frame.Slice(Wire.EthernetHeader + 8));  // TTL, protocol, checksum, source
        uint w2 = MemoryMarshal.Read<uint>(frame.Slice(Wire.EthernetHeader + 16));   // destination
        // no options; MF clear and offset 0 (DF may be set); TTL above 1; a valid header checksum
        if ((byte)w0 != 0x45 || ((w0 >> 48) & 0xFF3F) != 0 || (byte)w1 <= 1 ||
            InternetChecksum.Fold((w0 & 0xFFFFFFFF) + (w0 >> 32) + (w1 & 0xFFFFFFFF) + (w1 >> 32) + w2) != 0xFFFF)
            return false;
        int total = BinaryPrimitives.ReverseEndianness((ushort)(w0 >> 16));
        byte protocol = (byte)(w1 >> 8);
        if (total > frame.Length - Wire.EthernetHeader || !TransportIsPlain(frame, L4, total - Wire.IPv4MinHeader, protocol))
            return false;
        uint src = BinaryPrimitives.ReverseEndianness((uint)(w1 >> 32)), dst = BinaryPrimitives.ReverseEndianness(w2);
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4)), dport = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4 + 2));
        // the hash from plain numbers, before the key exists: computed from the key's fields, it went through the stack
        int hash = FlowKey.HashV4(src, dst, sport, dport, (IpProtocol)protocol);
        var key = new FlowKey(IpAddr.FromV4(src), IpAddr.FromV4(dst), sport, dport, (IpProtocol)protocol);
        return ForwardEstablished(frame, in key, hash, v6: false, L4, total - Wire.IPv4MinHeader, total, now, ref f);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryFastLaneV6(Span<byte> frame, long now, ref Forwarding f)
    {
        const int L4 = Wire.EthernetHeader + Wire.IPv6Header; // no extension headers: the transport header is here
        if (frame.Length < L4 + Wire.UdpHeader || frame[Wire.EthernetHeader] >> 4 != 6 ||
            frame[Wire.EthernetHeader + Wire.Ip6HopLimit] <= 1)
            return false;
        int payload = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(Wire.EthernetHeader + Wire.Ip6PayloadLength));
        byte protocol = frame[Wire.EthernetHeader + Wire.Ip6NextHeader];
        if (Wire.IPv6Header + payload > frame.Length - Wire.EthernetHeader || !TransportIsPlain(frame, L4, payload, protocol))
            return false;
        var key = new FlowKey(IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Src)), IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Dst)),
            BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4)), BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4 + 2)), (IpProtocol)protocol);
        return ForwardEstablished(frame, in key, key.GetHashCode(), v6: true, L4, payload, Wire.IPv6Header + payload, now, ref f);
    }

    /// <summary>A UDP header whose length is the payload's, or a TCP header that fits and carries no SYN, FIN or
    /// RST (what the general parser accepts, and what leaves the TCP state as it is); nothing else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TransportIsPlain(ReadOnlySpan<byte> frame, int l4, int l4Length, byte protocol)
    {
        if (protocol == (byte)IpProtocol.Udp)
            return l4Length >= Wire.UdpHeader && BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l4 + 4)) == l4Length;
        return protocol == (byte)IpProtocol.Tcp && l4Length >= Wire.TcpMinHeader &&
               frame[l4 + 12] >> 4 >= Wire.TcpMinHeader / 4 && (frame[l4 + 12] >> 4) * 4 <= l4Length &&
               (frame[l4 + Wire.TcpFlags] & (Wire.TcpSyn | Wire.TcpFin | Wire.TcpRst)) == 0;
    }

    /// <summary>The fast lane once the headers are known plain: the connection, the next hop, then the same
    /// steps, in the same order, as the general path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ForwardEstablished(Span<byte> frame, in FlowKey key, int hash, bool v6, int l4Offset, int l4Length, int ipTotal,
        long now, ref Forwarding f)
    {
        bool udp = key.Protocol == IpProtocol.Udp;
        // the one lookup the general path makes first for this packet
        bool toBackend = !(key.DstPort >= _options.NatPortMin && key.DstPort <= _options.NatPortMax);
        if (!_connections.TryGetInlined(backendSide: !toBackend, in key, hash, out int index))
            return false;
        ref var c = ref _connections[index];
        if (c.Dsr || (!udp && c.TcpState != TcpState.Established))
            return false;
        IpAddr newDst = toBackend ? c.BackendIp : c.ClientIp;
        if (!_egress.TryResolvedAt(toBackend ? c.HopToBackend : c.HopToClient, newDst, now, ipTotal, out var hop, out int port))
            return false;

        // from here on the packet goes
        CountPacket(ref c, toBackend, frame.Length, now);
        c.Toward(toBackend, out var newSrc, out _, out ushort newSport, out ushort newDport);
        if (toBackend)
            Counters.ToBackend++;
        else
            Counters.ToClient++;
        TagTowardClient(ref f, in c, toBackend);
        ulong oldAddresses = NatRewriter.WordSum(v6, key.SrcIp, key.DstIp);
        ulong addressDelta = NatRewriter.AddressDelta(v6, oldAddresses, NatRewriter.WordSum(v6, newSrc, newDst));
        if (NatRewriter.TranslatePorts(frame.Slice(l4Offset, l4Length), l4Length, 0, udp, _options.RepairPartialChecksums, (byte)key.Protocol,
                oldAddresses, addressDelta, newSrc, newDst, key.SrcPort, key.DstPort, newSport, newDport))
            Counters.PartialChecksumsRepaired++;
        NatRewriter.RewriteIpHeader(frame.Slice(Wire.EthernetHeader, l4Offset - Wire.EthernetHeader), v6, newSrc, newDst, addressDelta);
        _egress.WriteMacs(frame, in hop, port);
        f.EgressIfIndex = hop.IfIndex;
        f.NextHop = newDst;
        return true;
    }
}
