using System.Runtime.InteropServices;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Ethtool;

/// <summary>Reads an interface's queue counts (ETHTOOL_GCHANNELS through the SIOCETHTOOL ioctl).</summary>
public static unsafe class EthtoolChannels
{
    private const uint ETHTOOL_GCHANNELS = 0x3c;

    /// <summary>struct ethtool_channels { __u32 cmd; max_rx, max_tx, max_other, max_combined, rx_count, tx_count, other_count, combined_count; }</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Channels
    {
        public uint Cmd, MaxRx, MaxTx, MaxOther, MaxCombined, RxCount, TxCount, OtherCount, CombinedCount;
    }

    /// <summary>struct ifreq with the ifr_data member: char ifr_name[16]; void *ifr_data; (padded to 40 bytes).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    private struct IfReqData
    {
        public fixed byte Name[16];
        public void* Data;
    }

    /// <summary>The number of RX queues an AF_XDP socket can bind to (rx + combined channels); 1 when the
    /// driver does not report channels.</summary>
    public static int GetRxQueueCount(string ifName)
    {
        using var socket = new FileDescriptorHandle(Libc.socket(Libc.AF_INET, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, 0));
        if (socket.IsInvalid)
            throw NativeException.FromLastError("socket(AF_INET, SOCK_DGRAM) for ethtool");
        int fd = socket.Fd;
        {
            var ch = new Channels { Cmd = ETHTOOL_GCHANNELS };
            var req = new IfReqData { Data = &ch };
            var name = System.Text.Encoding.ASCII.GetBytes(ifName);
            for (int i = 0; i < name.Length && i < 15; i++)
                req.Name[i] = name[i];
            if (Libc.ioctl(fd, Libc.SIOCETHTOOL, &req) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EOPNOTSUPP)
                    return 1;
                throw new NativeException($"ioctl(SIOCETHTOOL, ETHTOOL_GCHANNELS) on {ifName}", errno);
            }
            int n = (int)(ch.RxCount + ch.CombinedCount);
            return n > 0 ? n : 1;
        }
    }
}
