namespace ZonLb.Engine.Packets;

/// <summary>802.1Q tags written, pushed or popped in place, in a buffer that has headroom in front of the frame
/// (a UMEM frame: the kernel leaves XDP_PACKET_HEADROOM before received data).</summary>
internal static class VlanTags
{
    /// <summary>The VLAN id of a tagged frame, or 0 when it carries no 802.1Q tag.</summary>
    public static int Of(ReadOnlySpan<byte> frame) =>
        frame.Length >= Wire.EthernetHeader + Wire.VlanTag && frame[12] == 0x81 && frame[13] == 0x00
            ? ((frame[14] & 0x0F) << 8) | frame[15]
            : 0;

    /// <summary>
    /// Gives the frame at <paramref name="offset"/> (length <paramref name="length"/>) in <paramref name="buffer"/>
    /// the tag <paramref name="vlan"/> (0: none): rewritten in place, pushed in front (the frame then starts 4
    /// bytes earlier) or popped (4 bytes later); only the MAC addresses move. Returns false when a push has no
    /// headroom.
    /// </summary>
    public static bool Retag(Span<byte> buffer, ref int offset, ref int length, ushort vlan)
    {
        var frame = buffer.Slice(offset, length);
        bool tagged = length >= Wire.EthernetHeader + Wire.VlanTag && frame[12] == 0x81 && frame[13] == 0x00;
        if (vlan != 0 && tagged)
        {
            frame[14] = (byte)((frame[14] & 0xF0) | (vlan >> 8)); // the priority bits stay
            frame[15] = (byte)vlan;
            return true;
        }
        if (vlan != 0)
        {
            if (offset < Wire.VlanTag)
                return false;
            offset -= Wire.VlanTag;
            length += Wire.VlanTag;
            var grown = buffer.Slice(offset, length);
            grown.Slice(Wire.VlanTag, 12).CopyTo(grown);
            grown[12] = 0x81;
            grown[13] = 0x00;
            grown[14] = (byte)(vlan >> 8);
            grown[15] = (byte)vlan;
            return true;
        }
        if (tagged)
        {
            frame.Slice(0, 12).CopyTo(frame.Slice(Wire.VlanTag)); // overlapping: a memmove
            offset += Wire.VlanTag;
            length -= Wire.VlanTag;
        }
        return true;
    }
}
