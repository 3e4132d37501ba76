using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Netlink;

/// <summary>Builds one netlink request in a buffer: header, fixed part, attributes (4-byte aligned).</summary>
internal ref struct MessageWriter
{
    private readonly Span<byte> _buf;
    public int Length;

    public MessageWriter(Span<byte> buf)
    {
        _buf = buf;
        _buf.Clear();
        Length = 0;
    }

    public void Byte(int v) => _buf[Length++] = (byte)v;
    public void Bytes(int zeros) => Length += zeros;
    public void UInt16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(_buf.Slice(Length), v); Length += 2; }
    public void UInt32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_buf.Slice(Length), v); Length += 4; }
    public void Int32(int v) { BinaryPrimitives.WriteInt32LittleEndian(_buf.Slice(Length), v); Length += 4; }

    public void Attr(ushort type, scoped ReadOnlySpan<byte> value)
    {
        UInt16((ushort)(4 + value.Length));
        UInt16(type);
        value.CopyTo(_buf.Slice(Length));
        Length = RtNetlink.Align4(Length + value.Length);
    }

    public void AttrString(ushort type, string s)
    {
        Span<byte> b = stackalloc byte[s.Length + 1];
        System.Text.Encoding.ASCII.GetBytes(s, b);
        b[s.Length] = 0;
        Attr(type, b);
    }
}

/// <summary>Iterates the rtattr list of a message.</summary>
internal ref struct AttrReader
{
    private ReadOnlySpan<byte> _rest;
    public AttrReader(ReadOnlySpan<byte> attrs) { _rest = attrs; Type = 0; Value = default; }
    public ushort Type { get; private set; }
    public ReadOnlySpan<byte> Value { get; private set; }

    public bool MoveNext()
    {
        if (_rest.Length < 4)
            return false;
        int len = BinaryPrimitives.ReadUInt16LittleEndian(_rest);
        if (len < 4 || len > _rest.Length)
            return false;
        Type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(_rest.Slice(2)) & 0x3FFF);
        Value = _rest.Slice(4, len - 4);
        _rest = _rest.Slice(Math.Min(RtNetlink.Align4(len), _rest.Length));
        return true;
    }
}
