using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using ZonLb.Native.Interop;
using ZonLb.Native.Netlink;
using ZonLb.Native.Xsk;

namespace ZonLb.TrafficGen;

/// <summary>
/// The end-to-end benchmark's generator: an AF_XDP transmitter that sends prebuilt UDP frames (N flows, by
/// source port) out of one interface as fast as its TX ring and the kernel take them, for a given time, and
/// prints what it offered. No XDP program is needed to transmit. Usage (inside the client namespace):
///   zonlb-trafficgen IFNAME DST_MAC SRC_IP DST_IP DST_PORT [--flows N] [--seconds S] [--size BYTES] [--rate PPS]
/// --rate paces the frames put on the TX ring to at most PPS per second (0, the default: as fast as it can), so
/// a path can be measured below its saturation point, where nothing is lost.
/// `zonlb-trafficgen control-load ...` keeps a load balancer's control plane busy instead (<see cref="ControlLoad"/>).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["control-load", ..])
            return ControlLoad.Run(args).GetAwaiter().GetResult();
        if (args.Length < 5)
        {
            Console.Error.WriteLine("usage: zonlb-trafficgen IFNAME DST_MAC SRC_IP DST_IP DST_PORT [--flows N] [--seconds S] [--size BYTES] [--rate PPS]");
            return 2;
        }
        string ifName = args[0];
        var dstMac = PhysicalAddress.Parse(args[1].Replace(':', '-').ToUpperInvariant()).GetAddressBytes();
        var srcIp = IPAddress.Parse(args[2]);
        var dstIp = IPAddress.Parse(args[3]);
        ushort dstPort = ushort.Parse(args[4]);
        int flows = Option(args, "--flows", 1), size = Option(args, "--size", 60);
        double seconds = Option(args, "--seconds", 5);
        long rate = Option(args, "--rate", 0);
        if (size < 42 || size > 1514 || flows < 1 || flows > 65535)
        {
            Console.Error.WriteLine("--size must be 42-1514 bytes (without FCS), --flows 1-65535");
            return 2;
        }

        using var nl = new RtNetlink();
        var link = nl.GetLink(ifName) ?? throw new InvalidOperationException($"no interface {ifName}");
        const int Frames = 4096, RingSize = 2048;
        using var umem = new Umem(Frames, 2048);
        using var registration = XskUmem.Register(umem, RingSize, ifName);
        using var xsk = XskSocket.Create(registration, ifName, link.Index, 0, RingSize, XskBindMode.Copy);

        // every UMEM frame holds a ready frame of flow (i % flows); they are sent again as they complete
        var free = new ulong[Frames];
        int freeCount = umem.AllocateBatch(free);
        for (int i = 0; i < freeCount; i++)
            Build(umem.GetFrame(free[i], size), dstMac, link.Mac.GetAddressBytes(), srcIp, dstIp, (ushort)(10000 + i % flows), dstPort);

        long sent = 0, completed = 0, kicks = 0;
        var clock = Stopwatch.StartNew();
        long until = (long)(seconds * Stopwatch.Frequency);
        while (clock.ElapsedTicks < until)
        {
            uint done = xsk.Completion.Peek(RingSize, out uint ci);
            for (uint k = 0; k < done; k++)
                free[freeCount++] = xsk.Completion.AddrAt(ci + k);
            xsk.Completion.Release(done);
            completed += done;

            uint n = Math.Min((uint)freeCount, xsk.Tx.FreeEntries(RingSize));
            if (rate > 0)
            {
                long due = (long)(clock.ElapsedTicks * (double)rate / Stopwatch.Frequency) - sent;
                n = (uint)Math.Clamp(due, 0, n);
            }
            if (n > 0 && xsk.Tx.Reserve(n, out uint ti))
            {
                for (uint k = 0; k < n; k++)
                {
                    ref var d = ref xsk.Tx.DescAt(ti + k);
                    d.Addr = free[--freeCount];
                    d.Len = (uint)size;
                    d.Options = 0;
                }
                xsk.Tx.Submit(n);
                sent += n;
            }
            if (xsk.Tx.Outstanding > 0)
            {
                int err = xsk.KickTx(); // copy mode sends at most 32 frames per kick
                kicks++;
                if (err != 0 && err != Errno.EAGAIN && err != Errno.EBUSY && err != Errno.ENOBUFS)
                    throw new NativeException("sendto (TX kick)", err);
            }
        }
        double secs = clock.Elapsed.TotalSeconds;
        var stats = xsk.GetStatistics();
        Console.WriteLine($"offered {completed / secs:F0} pps ({completed} frames of {size} bytes in {secs:F2} s, {flows} flow(s), " +
                          $"{kicks} kicks, tx_invalid {stats.TxInvalidDescs}{(rate > 0 ? $", paced to {rate} pps" : "")})");
        return 0;
    }

    internal static int Option(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
    }

    /// <summary>Ethernet + IPv4 + UDP with valid checksums, padded with zeros to the frame's length.</summary>
    private static void Build(Span<byte> f, byte[] dstMac, byte[] srcMac, IPAddress src, IPAddress dst, ushort sport, ushort dport)
    {
        f.Clear();
        dstMac.CopyTo(f);
        srcMac.CopyTo(f.Slice(6));
        BinaryPrimitives.WriteUInt16BigEndian(f.Slice(12), 0x0800);
        var ip = f.Slice(14, 20);
        int udpLength = f.Length - 14 - 20;
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(20 + udpLength));
        ip[8] = 64;
        ip[9] = 17;
        src.TryWriteBytes(ip.Slice(12), out _);
        dst.TryWriteBytes(ip.Slice(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), Finish(Sum(ip)));
        var udp = f.Slice(34, udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(4), (ushort)udpLength);
        uint pseudo = Sum(ip.Slice(12, 8)) + 17u + (uint)udpLength;
        ushort check = Finish(pseudo + Sum(udp));
        BinaryPrimitives.WriteUInt16BigEndian(udp.Slice(6), check == 0 ? (ushort)0xFFFF : check);
    }

    private static uint Sum(ReadOnlySpan<byte> b)
    {
        uint s = 0;
        for (int i = 0; i + 1 < b.Length; i += 2)
            s += (uint)(b[i] << 8 | b[i + 1]);
        if ((b.Length & 1) != 0)
            s += (uint)(b[^1] << 8);
        return s;
    }

    private static ushort Finish(uint s)
    {
        while (s > 0xFFFF)
            s = (s & 0xFFFF) + (s >> 16);
        return (ushort)~s;
    }
}
