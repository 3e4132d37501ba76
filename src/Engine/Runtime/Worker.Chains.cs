using ZonLb.Engine.Checksums;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Native.Abi;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>Multi-buffer frames (XDP_PKT_CONTD chains): taken whole, parsed with their length, freed whole.</summary>
internal sealed partial class Worker
{
    /// <summary>The first pass over a frame of several descriptors starting at the batch's i-th (n in the batch):
    /// copies the others' descriptors aside and parses the frame (<see cref="ParseChain"/>). Returns how many
    /// descriptors it took. Descriptors that continue a chain whose start was not seen (the ring's head after
    /// <see cref="_midChain"/>) are freed and counted as one truncated frame.</summary>
    private uint LookAtChain(int si, uint idx, uint i, uint n)
    {
        var rx = _owned[si].Rx;
        uint k = 0;
        while (i + k < n && rx.DescAt(idx + i + k++).Continues)
        {
        }
        bool complete = !rx.DescAt(idx + i + k - 1).Continues;
        if (_midChain[si] || !complete)
        {
            for (uint j = 0; j < k; j++)
            {
                _parts[i + j] = 0;
                _frames.Free(rx.DescAt(idx + i + j).Addr);
            }
            if (_midChain[si])
                Counters.Drop(DropReason.Truncated);
            _midChain[si] = !complete;
            return k;
        }
        _parts[i] = (byte)k;
        for (uint j = 1; j < k; j++)
        {
            _parts[i + j] = 0;
            _batchRest[i + j] = rx.DescAt(idx + i + j);
        }
        var head = rx.DescAt(idx + i);
        _candidate[i] = false;
        ref var p = ref _parsed[i];
        var reason = ParseChain(head.Addr, (int)head.Len, _batchRest.AsSpan((int)i + 1, (int)k - 1), out p);
        _reasons[i] = reason;
        _hints[i] = Processor.HintOf(ref p, reason);
        return k;
    }

    /// <summary>Parses a frame's first buffer knowing the length of its other buffers (rest), and when its checksum
    /// is partial sums those for the repair (each buffer's words counted from the transport header's start).</summary>
    private DropReason ParseChain(ulong addr, int len, ReadOnlySpan<XdpDesc> rest, out ParsedPacket p)
    {
        var frame = _umem.GetFrame(addr, len);
        var reason = PacketParser.Parse(frame, (int)BytesOf(rest), out p);
        if (reason == DropReason.None && p.Beyond > 0 && Processor.HasPartialChecksum(frame, in p))
        {
            ulong sum = 0;
            int offset = p.L4InFrame, left = p.Beyond;
            for (int j = 0; j < rest.Length && left > 0; j++)
            {
                int n = Math.Min((int)rest[j].Len, left);
                sum += InternetChecksum.SumAt(_umem.GetFrame(rest[j].Addr, n), offset);
                offset += n;
                left -= n;
            }
            p.BeyondSum = sum;
        }
        return reason;
    }

    private static long BytesOf(ReadOnlySpan<XdpDesc> rest)
    {
        long n = 0;
        foreach (ref readonly var d in rest)
            n += d.Len;
        return n;
    }

    private void FreeRest(ReadOnlySpan<XdpDesc> rest)
    {
        foreach (ref readonly var d in rest)
            _frames.Free(d.Addr);
    }

    /// <summary>Returns a frame and its other buffers to this worker's stock.</summary>
    private void Free(ulong addr, ReadOnlySpan<XdpDesc> rest)
    {
        _frames.Free(addr);
        FreeRest(rest);
    }
}
