using System.Buffers.Binary;

namespace ZonLb.Testing;

/// <summary>Splits test frames into IP fragments and puts fragments back together, by the RFCs (791, 8200),
/// independently of the engine.</summary>
public static class Fragments
{
    /// <summary>The fragments of an untagged IPv4 or IPv6 frame, each carrying at most chunk bytes of the
    /// datagram's payload (a multiple of 8), with identification id.</summary>
    public static List<byte[]> Split(byte[] frame, int chunk, uint id)
    {
        bool v6 = frame[12] == 0x86;
        int ihl = v6 ? 40 : (frame[14] & 0x0F) * 4;
        var header = frame.AsSpan(0, 14 + ihl);
        var payload = frame.AsSpan(14 + ihl);
        var list = new List<byte[]>();
        for (int off = 0; off < payload.Length; off += chunk)
        {
            int n = Math.Min(chunk, payload.Length - off);
            bool more = off + n < payload.Length;
            byte[] f;
            if (v6)
            {
                f = new byte[14 + 40 + 8 + n];
                header.CopyTo(f);
                f[14 + 6] = 44; // fragment header
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14 + 4), (ushort)(8 + n));
                f[54] = frame[14 + 6]; // the upper-layer protocol
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(56), (ushort)(off | (more ? 1 : 0)));
                BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(58), id);
                payload.Slice(off, n).CopyTo(f.AsSpan(62));
            }
            else
            {
                f = new byte[14 + ihl + n];
                header.CopyTo(f);
                var ip = f.AsSpan(14, ihl);
                BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(ihl + n));
                BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), (ushort)id);
                BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(6), (ushort)((more ? 0x2000 : 0) | (off / 8)));
                BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), 0);
                BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), (ushort)~ReferenceChecksum.Sum(ip));
                payload.Slice(off, n).CopyTo(f.AsSpan(14 + ihl));
            }
            list.Add(f);
        }
        return list;
    }

    /// <summary>The whole frame again from its fragments (any order): the first fragment's headers, fixed up.</summary>
    public static byte[] Reassemble(IReadOnlyList<byte[]> fragments)
    {
        bool v6 = fragments[0][12] == 0x86;
        var parts = new List<(int Offset, byte[] Data)>();
        byte[]? first = null;
        foreach (var f in fragments)
        {
            int off, start;
            if (v6)
            {
                off = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(56)) & 0xFFF8;
                start = 62;
            }
            else
            {
                int ihl = (f[14] & 0x0F) * 4;
                off = (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)) & 0x1FFF) * 8;
                start = 14 + ihl;
            }
            parts.Add((off, f[start..]));
            if (off == 0)
                first = f;
        }
        int length = parts.Max(p => p.Offset + p.Data.Length);
        var payload = new byte[length];
        foreach (var (off, data) in parts)
            data.CopyTo(payload, off);
        if (v6)
        {
            var whole = new byte[14 + 40 + length];
            first![..54].CopyTo(whole, 0);
            whole[14 + 6] = first[54];
            BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(18), (ushort)length);
            payload.CopyTo(whole, 54);
            return whole;
        }
        int h = (first![14] & 0x0F) * 4;
        var w4 = new byte[14 + h + length];
        first[..(14 + h)].CopyTo(w4, 0);
        var ip4 = w4.AsSpan(14, h);
        BinaryPrimitives.WriteUInt16BigEndian(ip4.Slice(2), (ushort)(h + length));
        BinaryPrimitives.WriteUInt16BigEndian(ip4.Slice(6), 0);
        BinaryPrimitives.WriteUInt16BigEndian(ip4.Slice(10), 0);
        BinaryPrimitives.WriteUInt16BigEndian(ip4.Slice(10), (ushort)~ReferenceChecksum.Sum(ip4));
        payload.CopyTo(w4, 14 + h);
        return w4;
    }
}
