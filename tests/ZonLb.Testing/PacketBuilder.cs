using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace ZonLb.Testing;

/// <summary>
/// Builds Ethernet/IPv4 and Ethernet/IPv6 test frames with PacketDotNet (an independent implementation of the
/// headers and checksums), optionally with the L4 checksum left as CHECKSUM_PARTIAL (pseudo-header sum only), a
/// wrong checksum, a VLAN tag, a given TTL (hop limit) or IPv6 extension headers. The addresses' family decides
/// the IP version; ICMP echo becomes ICMPv6 echo over IPv6.
/// </summary>
public sealed class PacketBuilder
{
    public static readonly PhysicalAddress DefaultSrcMac = PhysicalAddress.Parse("02-00-00-00-00-01");
    public static readonly PhysicalAddress DefaultDstMac = PhysicalAddress.Parse("02-00-00-00-00-02");

    private readonly ProtocolType _proto;
    private IPAddress _src = IPAddress.Parse("10.10.0.2"), _dst = IPAddress.Parse("10.10.0.1");
    private ushort _sport = 40000, _dport = 80;
    private byte[] _payload = Array.Empty<byte>();
    private byte _ttl = 64;
    private byte _tcpFlags = 0x02;
    private uint _seq = 1000;
    private byte _icmpType = 8;
    private ushort _icmpId = 0x1234, _icmpSeq = 1;
    private ChecksumKind _checksum = ChecksumKind.Valid;
    private ushort? _vlan;
    private bool _udpZeroChecksum;
    private PhysicalAddress _srcMac = DefaultSrcMac, _dstMac = DefaultDstMac;
    private readonly List<byte> _extensionHeaders = new();
    private bool _dontFragment;

    public enum ChecksumKind { Valid, Partial, Wrong }

    private PacketBuilder(ProtocolType proto) => _proto = proto;

    public static PacketBuilder Tcp(string src, ushort sport, string dst, ushort dport) =>
        new PacketBuilder(ProtocolType.Tcp).Addresses(src, dst).Ports(sport, dport);

    public static PacketBuilder Udp(string src, ushort sport, string dst, ushort dport) =>
        new PacketBuilder(ProtocolType.Udp).Addresses(src, dst).Ports(sport, dport);

    public static PacketBuilder IcmpEcho(string src, string dst, ushort id, bool reply = false) =>
        new PacketBuilder(ProtocolType.Icmp) { _icmpId = id, _icmpType = reply ? (byte)0 : (byte)8 }.Addresses(src, dst);

    public PacketBuilder Addresses(string src, string dst) { _src = IPAddress.Parse(src); _dst = IPAddress.Parse(dst); return this; }
    public PacketBuilder Ports(ushort sport, ushort dport) { _sport = sport; _dport = dport; return this; }
    public PacketBuilder Payload(byte[] payload) { _payload = payload; return this; }
    public PacketBuilder Payload(int length, int seed = 1) { _payload = new byte[length]; new Random(seed).NextBytes(_payload); return this; }
    public PacketBuilder Ttl(byte ttl) { _ttl = ttl; return this; }
    public PacketBuilder TcpFlags(byte flags) { _tcpFlags = flags; return this; }
    public PacketBuilder Seq(uint sequenceNumber) { _seq = sequenceNumber; return this; }
    public PacketBuilder Checksum(ChecksumKind kind) { _checksum = kind; return this; }
    public PacketBuilder UdpWithoutChecksum() { _udpZeroChecksum = true; return this; }
    public PacketBuilder Vlan(ushort id) { _vlan = id; return this; }
    /// <summary>IPv4: sets DF (what Linux does for TCP and, with path MTU discovery, for UDP).</summary>
    public PacketBuilder DontFragment() { _dontFragment = true; return this; }
    public PacketBuilder Macs(PhysicalAddress src, PhysicalAddress dst) { _srcMac = src; _dstMac = dst; return this; }
    /// <summary>IPv6: adds an 8-byte extension header of this type (0 hop-by-hop, 43 routing, 60 destination
    /// options, 44 an atomic fragment) before the transport header, in the order added.</summary>
    public PacketBuilder ExtensionHeader(byte type) { _extensionHeaders.Add(type); return this; }

    private bool IsV6 => _src.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;

    public byte[] Build() => IsV6 ? BuildV6() : BuildV4();

    private byte[] BuildV6()
    {
        var ip = new IPv6Packet(_src, _dst) { HopLimit = _ttl };
        byte[] l4;
        int csOff;
        byte next;
        switch (_proto)
        {
            case ProtocolType.Tcp:
            {
                var tcp = new TcpPacket(_sport, _dport)
                {
                    Flags = _tcpFlags, SequenceNumber = _seq, AcknowledgmentNumber = (_tcpFlags & 0x10) != 0 ? 1u : 0u,
                    WindowSize = 64240, PayloadData = _payload,
                };
                ip.PayloadPacket = tcp;
                ip.UpdateCalculatedValues();
                tcp.UpdateTcpChecksum();
                l4 = tcp.Bytes;
                csOff = 16;
                next = 6;
                break;
            }
            case ProtocolType.Udp:
            {
                var udp = new UdpPacket(_sport, _dport) { PayloadData = _payload };
                ip.PayloadPacket = udp;
                ip.UpdateCalculatedValues();
                udp.UpdateCalculatedValues();
                udp.UpdateUdpChecksum();
                l4 = udp.Bytes;
                csOff = 6;
                next = 17;
                break;
            }
            default:
            {
                l4 = new byte[8 + _payload.Length];
                l4[0] = _icmpType == 8 ? (byte)128 : _icmpType == 0 ? (byte)129 : _icmpType;
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), _icmpId);
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), _icmpSeq);
                _payload.CopyTo(l4, 8);
                csOff = 2;
                next = 58;
                break;
            }
        }
        var src = _src.GetAddressBytes();
        var dst = _dst.GetAddressBytes();
        ushort pseudo = ReferenceChecksum.PseudoHeaderSumV6(src, dst, next, l4.Length);
        if (next == 58)
            BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), (ushort)~ReferenceChecksum.Add(pseudo, ReferenceChecksum.Sum(l4)));
        if (_proto == ProtocolType.Udp && _udpZeroChecksum)
            BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(csOff), 0);
        else if (_checksum == ChecksumKind.Partial)
            BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(csOff), pseudo);
        else if (_checksum == ChecksumKind.Wrong)
            BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(csOff), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(l4.AsSpan(csOff)) ^ 0x5A5A));

        // fixed header written by hand around the extension headers (checksums do not cover them)
        var ext = new List<byte>();
        for (int i = 0; i < _extensionHeaders.Count; i++)
        {
            byte following = i + 1 < _extensionHeaders.Count ? _extensionHeaders[i + 1] : next;
            if (_extensionHeaders[i] == 44)
                ext.AddRange(new byte[] { following, 0, 0, 0, 0x12, 0x34, 0x56, 0x78 }); // offset 0, M=0
            else
                ext.AddRange(new byte[] { following, 0, 1, 4, 0, 0, 0, 0 }); // PadN of 4: 8 bytes in all
        }
        var ipBytes = new byte[40 + ext.Count + l4.Length];
        ipBytes[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ipBytes.AsSpan(4), (ushort)(ext.Count + l4.Length));
        ipBytes[6] = _extensionHeaders.Count > 0 ? _extensionHeaders[0] : next;
        ipBytes[7] = _ttl;
        src.CopyTo(ipBytes, 8);
        dst.CopyTo(ipBytes, 24);
        ext.CopyTo(ipBytes, 40);
        l4.CopyTo(ipBytes, 40 + ext.Count);
        return Frame(ipBytes, 0x86DD);
    }

    private byte[] BuildV4()
    {
        var ip = new IPv4Packet(_src, _dst) { TimeToLive = _ttl };
        int l4Checksum;
        switch (_proto)
        {
            case ProtocolType.Tcp:
            {
                var tcp = new TcpPacket(_sport, _dport)
                {
                    Flags = _tcpFlags, SequenceNumber = _seq, AcknowledgmentNumber = (_tcpFlags & 0x10) != 0 ? 1u : 0u,
                    WindowSize = 64240, PayloadData = _payload,
                };
                ip.PayloadPacket = tcp;
                ip.UpdateCalculatedValues();
                tcp.UpdateTcpChecksum();
                l4Checksum = 16;
                break;
            }
            case ProtocolType.Udp:
            {
                var udp = new UdpPacket(_sport, _dport) { PayloadData = _payload };
                ip.PayloadPacket = udp;
                ip.UpdateCalculatedValues();
                udp.UpdateCalculatedValues();
                udp.UpdateUdpChecksum();
                l4Checksum = 6;
                break;
            }
            default:
            {
                var body = new byte[8 + _payload.Length];
                body[0] = _icmpType;
                BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(4), _icmpId);
                BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(6), _icmpSeq);
                _payload.CopyTo(body, 8);
                var icmp = new IcmpV4Packet(new PacketDotNet.Utils.ByteArraySegment(body));
                ip.PayloadPacket = icmp;
                ip.UpdateCalculatedValues();
                icmp.UpdateIcmpChecksum();
                l4Checksum = 2;
                break;
            }
        }
        if (_dontFragment)
            ip.FragmentFlags = 0x2;
        ip.UpdateIPChecksum();
        byte[] ipBytes = ip.Bytes;
        int ihl = (ipBytes[0] & 0x0F) * 4;
        var l4 = ipBytes.AsSpan(ihl);
        if (_proto == ProtocolType.Udp && _udpZeroChecksum)
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(l4Checksum), 0);
        else if (_checksum == ChecksumKind.Partial)
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(l4Checksum), ReferenceChecksum.PseudoHeaderSum(ipBytes.AsSpan(0, ihl), l4.Length));
        else if (_checksum == ChecksumKind.Wrong)
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(l4Checksum), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(l4Checksum)) ^ 0x5A5A));

        return Frame(ipBytes, 0x0800);
    }

    private byte[] Frame(byte[] ipBytes, ushort etherType)
    {
        int eth = _vlan.HasValue ? 18 : 14;
        var frame = new byte[eth + ipBytes.Length];
        _dstMac.GetAddressBytes().CopyTo(frame, 0);
        _srcMac.GetAddressBytes().CopyTo(frame, 6);
        if (_vlan is ushort v)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), v);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), etherType);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), etherType);
        }
        ipBytes.CopyTo(frame, eth);
        return frame;
    }

    /// <summary>
    /// An ICMP (IPv4 addresses) or ICMPv6 error frame from <paramref name="src"/> to <paramref name="dst"/> quoting
    /// the IP packet of <paramref name="quotedFrame"/> (an untagged frame), cut to <paramref name="quoteLength"/>
    /// bytes; <paramref name="mtu"/> goes where fragmentation-needed / packet-too-big carry it.
    /// </summary>
    public static byte[] IcmpError(string src, string dst, byte type, byte code, byte[] quotedFrame, int quoteLength, ushort mtu = 0)
    {
        var s = IPAddress.Parse(src);
        var d = IPAddress.Parse(dst);
        bool v6 = s.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        var quote = quotedFrame.AsSpan(14, Math.Min(quoteLength, quotedFrame.Length - 14));
        var icmp = new byte[8 + quote.Length];
        icmp[0] = type;
        icmp[1] = code;
        if (v6)
            BinaryPrimitives.WriteUInt32BigEndian(icmp.AsSpan(4), mtu);
        else
            BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(6), mtu);
        quote.CopyTo(icmp.AsSpan(8));
        byte[] ipBytes;
        if (v6)
        {
            ushort pseudo = ReferenceChecksum.PseudoHeaderSumV6(s.GetAddressBytes(), d.GetAddressBytes(), 58, icmp.Length);
            BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), (ushort)~ReferenceChecksum.Add(pseudo, ReferenceChecksum.Sum(icmp)));
            ipBytes = new byte[40 + icmp.Length];
            ipBytes[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ipBytes.AsSpan(4), (ushort)icmp.Length);
            ipBytes[6] = 58;
            ipBytes[7] = 64;
            s.GetAddressBytes().CopyTo(ipBytes, 8);
            d.GetAddressBytes().CopyTo(ipBytes, 24);
            icmp.CopyTo(ipBytes, 40);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), (ushort)~ReferenceChecksum.Sum(icmp));
            var ip = new IPv4Packet(s, d) { TimeToLive = 64, PayloadData = icmp, Protocol = PacketDotNet.ProtocolType.Icmp };
            ip.UpdateCalculatedValues();
            ip.UpdateIPChecksum();
            ipBytes = ip.Bytes;
        }
        var frame = new byte[14 + ipBytes.Length];
        DefaultDstMac.GetAddressBytes().CopyTo(frame, 0);
        DefaultSrcMac.GetAddressBytes().CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), v6 ? (ushort)0x86DD : (ushort)0x0800);
        ipBytes.CopyTo(frame, 14);
        return frame;
    }

    /// <summary>Parses a frame (untagged) with PacketDotNet, the oracle.</summary>
    public static IPv4Packet ParseIPv4(byte[] frame)
    {
        var eth = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, frame);
        return eth.Extract<IPv4Packet>() ?? throw new InvalidOperationException("not an IPv4 frame");
    }

    /// <summary>Parses an IPv6 frame (untagged, no extension headers) with PacketDotNet, the oracle.</summary>
    public static IPv6Packet ParseIPv6(byte[] frame)
    {
        var eth = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, frame);
        return eth.Extract<IPv6Packet>() ?? throw new InvalidOperationException("not an IPv6 frame");
    }
}

/// <summary>A deliberately plain checksum implementation for building test frames, independent of the engine's.</summary>
public static class ReferenceChecksum
{
    public static ushort Sum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i < data.Length; i += 2)
            sum += (uint)(data[i] << 8 | (i + 1 < data.Length ? data[i + 1] : 0));
        while (sum > 0xFFFF)
            sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    public static ushort Add(ushort a, ushort b)
    {
        uint sum = (uint)a + b;
        return (ushort)((sum & 0xFFFF) + (sum >> 16));
    }

    /// <summary>The folded IPv6 pseudo-header sum (RFC 8200 8.1).</summary>
    public static ushort PseudoHeaderSumV6(byte[] src, byte[] dst, byte next, int l4Length)
    {
        var ph = new byte[40];
        src.CopyTo(ph, 0);
        dst.CopyTo(ph, 16);
        BinaryPrimitives.WriteUInt32BigEndian(ph.AsSpan(32), (uint)l4Length);
        ph[39] = next;
        return Sum(ph);
    }

    /// <summary>True when the L4 checksum of an IPv6 frame's transport header (at l4, protocol next) verifies.</summary>
    public static bool VerifiesV6(ReadOnlySpan<byte> ip, int l4, byte next)
    {
        int length = 40 + BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(4)) - l4;
        ushort pseudo = PseudoHeaderSumV6(ip.Slice(8, 16).ToArray(), ip.Slice(24, 16).ToArray(), next, length);
        return Add(pseudo, Sum(ip.Slice(l4, length))) == 0xFFFF;
    }

    /// <summary>What a Linux sender with TX checksum offload leaves in the field: the folded pseudo-header sum.</summary>
    public static ushort PseudoHeaderSum(ReadOnlySpan<byte> ipHeader, int l4Length)
    {
        Span<byte> ph = stackalloc byte[12];
        ipHeader.Slice(12, 8).CopyTo(ph);
        ph[8] = 0;
        ph[9] = ipHeader[9];
        BinaryPrimitives.WriteUInt16BigEndian(ph.Slice(10), (ushort)l4Length);
        return Sum(ph);
    }
}
