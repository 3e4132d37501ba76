using System.Runtime.InteropServices;
using System.Text;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Ethtool;

/// <summary>An interface's driver statistics (`ethtool -S`), its driver name and its TX checksum offload state,
/// through the SIOCETHTOOL ioctl.</summary>
public static unsafe class EthtoolStats
{
    private const uint ETHTOOL_GDRVINFO = 0x03, ETHTOOL_GSTRINGS = 0x1b, ETHTOOL_GSTATS = 0x1d, ETHTOOL_GTXCSUM = 0x16, ETHTOOL_GSSET_INFO = 0x37;
    private const uint ETH_SS_STATS = 1;
    private const int ETH_GSTRING_LEN = 32;

    [StructLayout(LayoutKind.Sequential, Size = 40)]
    private struct IfReqData
    {
        public fixed byte Name[16];
        public void* Data;
    }

    private static int Ioctl(string ifName, void* data, out int errno)
    {
        errno = 0;
        using var socket = new FileDescriptorHandle(Libc.socket(Libc.AF_INET, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, 0));
        if (socket.IsInvalid)
            throw NativeException.FromLastError("socket(AF_INET, SOCK_DGRAM) for ethtool");
        int fd = socket.Fd;
        {
            var req = new IfReqData { Data = data };
            var name = Encoding.ASCII.GetBytes(ifName);
            for (int i = 0; i < name.Length && i < 15; i++)
                req.Name[i] = name[i];
            int r = Libc.ioctl(fd, Libc.SIOCETHTOOL, &req);
            if (r != 0)
                errno = Marshal.GetLastPInvokeError();
            return r;
        }
    }

    /// <summary>The driver's name (veth, mlx5_core, ...), or null when the interface does not answer.</summary>
    public static string? Driver(string ifName)
    {
        // struct ethtool_drvinfo { u32 cmd; char driver[32]; char version[32]; char fw_version[32]; char bus_info[32]; ... } (196 bytes)
        var buf = stackalloc byte[256];
        new Span<byte>(buf, 256).Clear();
        *(uint*)buf = ETHTOOL_GDRVINFO;
        if (Ioctl(ifName, buf, out _) != 0)
            return null;
        return Marshal.PtrToStringUTF8((nint)(buf + 4));
    }

    /// <summary>TX checksum offload on (true), off (false), or unknown (null).</summary>
    public static bool? TxChecksumOffload(string ifName)
    {
        // struct ethtool_value { u32 cmd; u32 data; }
        var v = stackalloc uint[2];
        v[0] = ETHTOOL_GTXCSUM;
        v[1] = 0;
        if (Ioctl(ifName, v, out _) != 0)
            return null;
        return v[1] != 0;
    }

    /// <summary>Every counter of `ethtool -S NAME`; empty when the driver has none.</summary>
    public static Dictionary<string, ulong> Read(string ifName)
    {
        var result = new Dictionary<string, ulong>();
        // struct ethtool_sset_info { u32 cmd; u32 reserved; u64 sset_mask; u32 data[]; }
        var info = stackalloc byte[24];
        new Span<byte>(info, 24).Clear();
        *(uint*)info = ETHTOOL_GSSET_INFO;
        *(ulong*)(info + 8) = 1UL << (int)ETH_SS_STATS;
        if (Ioctl(ifName, info, out _) != 0 || *(ulong*)(info + 8) == 0)
            return result;
        int n = (int)*(uint*)(info + 16);
        if (n <= 0 || n > 100_000)
            return result;

        // struct ethtool_gstrings { u32 cmd; u32 string_set; u32 len; u8 data[]; }
        var strings = new byte[12 + n * ETH_GSTRING_LEN];
        // struct ethtool_stats { u32 cmd; u32 n_stats; u64 data[]; }
        var stats = new byte[8 + n * 8];
        fixed (byte* s = strings)
        fixed (byte* v = stats)
        {
            *(uint*)s = ETHTOOL_GSTRINGS;
            *(uint*)(s + 4) = ETH_SS_STATS;
            *(uint*)(s + 8) = (uint)n;
            *(uint*)v = ETHTOOL_GSTATS;
            *(uint*)(v + 4) = (uint)n;
            if (Ioctl(ifName, s, out _) != 0 || Ioctl(ifName, v, out _) != 0)
                return result;
            for (int i = 0; i < n; i++)
            {
                string name = Marshal.PtrToStringUTF8((nint)(s + 12 + i * ETH_GSTRING_LEN)) ?? $"stat{i}";
                result[name] = *(ulong*)(v + 8 + i * 8);
            }
        }
        return result;
    }
}
