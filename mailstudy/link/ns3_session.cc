// A session's flights replayed over ns-3's own TCP: the independent reference for mailstudy's link and model.
//
// Why C++: ns-3's Python bindings take 13-22 s to import and must start from a folder of their own; this
// program, compiled once against the wheel's headers and libraries (mailstudy.link.ns3ref builds it), runs a
// session in well under a second. It shares no code with mailstudy: it reads a plain-text description of the
// flights on stdin and prints one JSON line.
//
// stdin: "setting NAME VALUE" lines (rtt_s, down_bps, up_bps, segment, init_cwnd, rcvbuf, sndbuf, cc,
//        queue_packets, min_rto_s, del_ack_count, framing_bytes), then
//        "greeting WORK_S BYTES", "list_pause LIST_PAUSE_S", and one line per flight:
//        "flight PAUSE_S BEFORE_LIST NREQ q1 u1 ... NANS o1 d1 ..." (request pieces at offsets after the flight's
//        first byte; answer pieces produced at offsets after the request's last byte reached the server).
// stdout: {"duration_s": ..., "time_to_list_s": ..., "first_command_s": ..., "last_answer_first_s": ...} seconds
//         from connect(), and the loss counters: "dropped" (data segments the error model dropped), "recoveries"
//         (entries into fast recovery, CA_RECOVERY) and "timeouts" (entries into CA_LOSS: an RTO fired).
//
// Loss (setting loss P, seed S): each data segment (a TCP segment with payload), either way, is dropped with
// probability P at the receiving device, from a generator seeded by S and the direction. SYN, SYN-ACK and pure
// ACKs are never dropped: that is mailstudy's link's rule (it loses segments, not the handshake or ACKs), and it
// keeps ns-3 3.44 clear of a hang of its own: a client in ESTABLISHED ignores a duplicate SYN-ACK without
// acknowledging it (TcpSocketBase::ProcessEstablished: "No action for received SYN+ACK, it is probably a
// duplicated packet"; Linux answers it with an ACK), so when the handshake's final ACK is lost the server stays
// in SYN_RCVD retransmitting SYN-ACKs nobody answers, and a server-first session, whose client sends nothing
// before the greeting, never starts. "setting drop_handshake_ack 1" drops that one ACK to show it.
//
// The network: two nodes, one point-to-point link with one-way delay RTT/2 and a rate per direction (raised by
// framing_bytes / 1500 so that the IP layer gets the profile's rate: ns-3 adds a 2-byte PPP header to every
// packet), a FIFO of queue_packets at each end (device queue and queue disc; never full in these runs).
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace ns3;

struct Piece
{
    double offset;
    uint32_t bytes;
};

struct Flight
{
    double pause = 0;
    bool beforeList = true;
    std::vector<Piece> req;
    std::vector<Piece> ans;
    uint64_t reqBytes = 0;
    uint64_t ansBytes = 0;
};

static std::map<std::string, std::string> g_set;
static double g_greetWork = 0, g_listPause = 0;
static uint32_t g_greetBytes = 0;
static std::vector<Flight> g_flights;
static std::map<Socket*, uint64_t> g_pending;
static Ptr<Socket> g_client;
static double g_tConnect = 0, g_tEnd = -1, g_tList = -1, g_tFirst = -1;
static uint64_t g_clientRx = 0, g_serverRx = 0, g_clientExpect = 0, g_serverExpect = 0;
static size_t g_clientNext = 0, g_serverNext = 0; // next flight the client sends / the server answers
static double g_tLastAnswerFirst = -1; // the first byte of the last flight's answer at the client
static uint64_t g_dropped = 0, g_recoveries = 0, g_timeouts = 0;

// Drops data segments only (module comment), each with probability `rate`, from its own seeded generator.
class DataSegmentLoss : public ErrorModel
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("mailstudy::DataSegmentLoss").SetParent<ErrorModel>();
        return tid;
    }

    DataSegmentLoss(double rate, uint32_t seed, bool dropHandshakeAck)
        : m_rate(rate),
          m_gen(seed),
          m_dropHandshakeAck(dropHandshakeAck)
    {
    }

  private:
    bool DoCorrupt(Ptr<Packet> p) override
    {
        Ptr<Packet> c = p->Copy();
        PppHeader ppp;
        Ipv4Header ip;
        TcpHeader tcp;
        c->RemoveHeader(ppp);
        c->RemoveHeader(ip);
        if (ip.GetProtocol() != 6)
        {
            return false;
        }
        c->RemoveHeader(tcp);
        if (c->GetSize() == 0)
        {
            if (m_dropHandshakeAck && tcp.GetFlags() == TcpHeader::ACK)
            {
                m_dropHandshakeAck = false; // the client's first pure ACK: the handshake's last
                g_dropped++;
                return true;
            }
            return false;
        }
        if (m_rate > 0 && m_uniform(m_gen) < m_rate)
        {
            g_dropped++;
            return true;
        }
        return false;
    }

    void DoReset() override
    {
    }

    double m_rate;
    std::mt19937_64 m_gen;
    std::uniform_real_distribution<double> m_uniform{0.0, 1.0};
    bool m_dropHandshakeAck;
};

static double
Num(const std::string& k, double dflt)
{
    auto it = g_set.find(k);
    return it == g_set.end() ? dflt : std::stod(it->second);
}

static void
CwndChanged(uint32_t, uint32_t now)
{
    std::cerr << "cwnd " << Simulator::Now().GetSeconds() << " " << now / 1448.0 << std::endl;
}

static void
CongStateChanged(TcpSocketState::TcpCongState_t, TcpSocketState::TcpCongState_t now)
{
    if (now == TcpSocketState::CA_RECOVERY)
    {
        g_recoveries++;
    }
    else if (now == TcpSocketState::CA_LOSS)
    {
        g_timeouts++;
    }
}

static void
Flush(Ptr<Socket> s, uint32_t)
{
    uint64_t& left = g_pending[PeekPointer(s)];
    while (left > 0)
    {
        uint32_t room = s->GetTxAvailable();
        if (room == 0)
        {
            return; // the send callback calls again when the buffer drains
        }
        uint32_t n = static_cast<uint32_t>(std::min<uint64_t>({left, room, 65536}));
        int sent = s->Send(Create<Packet>(n));
        if (sent <= 0)
        {
            return;
        }
        left -= static_cast<uint64_t>(sent);
    }
}

static void
SendBytes(Ptr<Socket> s, uint32_t n)
{
    g_pending[PeekPointer(s)] += n;
    Flush(s, 0);
}

static void SendFlight(size_t f);

static void
ClientDone()
{
    // the awaited answer is complete: flight g_clientNext - 1 (or the greeting) is over
    double now = Simulator::Now().GetSeconds();
    if (g_clientNext > 0 && g_flights[g_clientNext - 1].beforeList)
    {
        g_tList = now + g_listPause;
    }
    if (g_clientNext >= g_flights.size())
    {
        g_tEnd = now;
        return;
    }
    Simulator::Schedule(Seconds(g_flights[g_clientNext].pause), &SendFlight, g_clientNext);
}

static void
SendFlight(size_t f)
{
    const Flight& fl = g_flights[f];
    if (g_tFirst < 0)
    {
        g_tFirst = Simulator::Now().GetSeconds();
    }
    for (const Piece& p : fl.req)
    {
        Simulator::Schedule(Seconds(p.offset), &SendBytes, g_client, p.bytes);
    }
    g_clientNext = f + 1;
    g_clientExpect += fl.ansBytes;
    if (fl.ansBytes == 0)
    {
        Simulator::Schedule(Seconds(fl.req.empty() ? 0 : fl.req.back().offset), &ClientDone);
    }
}

static void
ClientRecv(Ptr<Socket> s)
{
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        uint64_t before = g_clientRx;
        if (g_tLastAnswerFirst < 0 && g_clientNext == g_flights.size() && g_clientRx < g_clientExpect)
        {
            g_tLastAnswerFirst = Simulator::Now().GetSeconds();
        }
        g_clientRx += p->GetSize();
        if (before < g_clientExpect && g_clientRx >= g_clientExpect)
        {
            ClientDone();
        }
    }
}

static void
ServerRecv(Ptr<Socket> s)
{
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        g_serverRx += p->GetSize();
        while (g_serverNext < g_flights.size() && g_serverRx >= g_serverExpect + g_flights[g_serverNext].reqBytes)
        {
            const Flight& fl = g_flights[g_serverNext];
            g_serverExpect += fl.reqBytes;
            for (const Piece& a : fl.ans)
            {
                Simulator::Schedule(Seconds(a.offset), &SendBytes, s, a.bytes);
            }
            g_serverNext++;
        }
    }
}

static void
Accepted(Ptr<Socket> s, const Address&)
{
    s->SetRecvCallback(MakeCallback(&ServerRecv));
    s->SetSendCallback(MakeCallback(&Flush));
    s->TraceConnectWithoutContext("CongState", MakeCallback(&CongStateChanged));
    if (Num("trace_cwnd", 0) != 0) // the server's window on stderr, for a reader who wants to see it
    {
        s->TraceConnectWithoutContext("CongestionWindow", MakeCallback(&CwndChanged));
    }
    if (g_greetBytes > 0)
    {
        Simulator::Schedule(Seconds(g_greetWork), &SendBytes, s, g_greetBytes);
    }
}

static void
Connected(Ptr<Socket> s)
{
    if (g_greetBytes == 0) // client-first: the first flight goes as soon as connect() returns
    {
        ClientDone();
    }
}

static void
ConnectFailed(Ptr<Socket>)
{
    std::cerr << "ns-3: the connection failed" << std::endl;
}


int
main(int argc, char* argv[])
{
    std::string line;
    while (std::getline(std::cin, line))
    {
        std::istringstream in(line);
        std::string kind;
        in >> kind;
        if (kind == "setting")
        {
            std::string k, v;
            in >> k >> v;
            g_set[k] = v;
        }
        else if (kind == "greeting")
        {
            in >> g_greetWork >> g_greetBytes;
        }
        else if (kind == "list_pause")
        {
            in >> g_listPause;
        }
        else if (kind == "flight")
        {
            Flight f;
            int before;
            size_t n;
            in >> f.pause >> before >> n;
            f.beforeList = before != 0;
            for (size_t i = 0; i < n; i++)
            {
                Piece p;
                in >> p.offset >> p.bytes;
                f.req.push_back(p);
                f.reqBytes += p.bytes;
            }
            in >> n;
            for (size_t i = 0; i < n; i++)
            {
                Piece p;
                in >> p.offset >> p.bytes;
                f.ans.push_back(p);
                f.ansBytes += p.bytes;
            }
            g_flights.push_back(f);
        }
    }
    double rtt = Num("rtt_s", 0.05);
    double framing = Num("framing_bytes", 2);
    double scale = (1500.0 + framing) / 1500.0;
    uint32_t queue = static_cast<uint32_t>(Num("queue_packets", 100000));
    std::string qsize = std::to_string(queue) + "p";

    Config::SetDefault("ns3::TcpL4Protocol::SocketType",
                       TypeIdValue(TypeId::LookupByName(g_set.count("cc") ? g_set["cc"] : "ns3::TcpCubic")));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(Num("segment", 1448)));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(Num("init_cwnd", 10)));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(Num("sndbuf", 64 << 20)));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(Num("rcvbuf", 3 << 20)));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(Num("del_ack_count", 2)));
    Config::SetDefault("ns3::TcpSocketBase::MinRto", TimeValue(Seconds(Num("min_rto_s", 0.2))));
    Config::SetDefault("ns3::TcpSocketBase::Sack", BooleanValue(true));
    Config::SetDefault("ns3::TcpSocketBase::Timestamp", BooleanValue(true));
    // the SYN's retransmission timeout: ns-3's default is 3 s (RFC 1122's); RFC 6298 2.1 and Linux use 1 s
    Config::SetDefault("ns3::TcpSocket::ConnTimeout", TimeValue(Seconds(Num("conn_timeout_s", 1.0))));

    NodeContainer nodes;
    nodes.Create(2); // 0: client, 1: server
    PointToPointHelper p2p;
    p2p.SetChannelAttribute("Delay", TimeValue(Seconds(rtt / 2)));
    p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", QueueSizeValue(QueueSize(qsize)));
    NetDeviceContainer dev = p2p.Install(nodes);
    dev.Get(0)->SetAttribute("DataRate", DataRateValue(DataRate(Num("up_bps", 1e9) * scale)));
    dev.Get(1)->SetAttribute("DataRate", DataRateValue(DataRate(Num("down_bps", 1e9) * scale)));
    double loss = Num("loss", 0);
    bool dropAck = Num("drop_handshake_ack", 0) != 0;
    if (loss > 0 || dropAck)
    {
        uint32_t seed = static_cast<uint32_t>(Num("seed", 1));
        // device 0 receives what the server sends, device 1 what the client sends
        dev.Get(0)->SetAttribute("ReceiveErrorModel",
                                 PointerValue(Create<DataSegmentLoss>(loss, 2 * seed, false)));
        dev.Get(1)->SetAttribute("ReceiveErrorModel",
                                 PointerValue(Create<DataSegmentLoss>(loss, 2 * seed + 1, dropAck)));
    }
    InternetStackHelper stack;
    stack.Install(nodes);
    TrafficControlHelper tch;
    tch.SetRootQueueDisc("ns3::FifoQueueDisc", "MaxSize", QueueSizeValue(QueueSize(qsize)));
    tch.Install(dev); // before the addresses, so ns-3 installs no fq_codel of its own
    Ipv4AddressHelper addr;
    addr.SetBase("10.1.1.0", "255.255.255.0");
    Ipv4InterfaceContainer ifs = addr.Assign(dev);

    Ptr<Socket> listener = Socket::CreateSocket(nodes.Get(1), TcpSocketFactory::GetTypeId());
    listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), 143));
    listener->Listen();
    listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(), MakeCallback(&Accepted));

    g_client = Socket::CreateSocket(nodes.Get(0), TcpSocketFactory::GetTypeId());
    g_client->SetRecvCallback(MakeCallback(&ClientRecv));
    g_client->SetSendCallback(MakeCallback(&Flush));
    g_client->SetConnectCallback(MakeCallback(&Connected), MakeCallback(&ConnectFailed));
    g_client->TraceConnectWithoutContext("CongState", MakeCallback(&CongStateChanged));
    g_clientExpect = g_greetBytes;
    g_tConnect = 1.0;
    Simulator::Schedule(Seconds(g_tConnect), [] {
        g_client->Bind();
        g_client->Connect(InetSocketAddress(Ipv4Address("10.1.1.2"), 143));
    });
    Simulator::Stop(Seconds(Num("stop_s", 3600)));
    Simulator::Run();
    Simulator::Destroy();
    if (g_tEnd < 0)
    {
        std::cout << "{\"error\": \"the session did not finish\", \"dropped\": " << g_dropped << "}" << std::endl;
        return 1;
    }
    std::cout.precision(9);
    std::cout << "{\"duration_s\": " << g_tEnd - g_tConnect << ", \"time_to_list_s\": "
              << (g_tList < 0 ? g_tEnd : g_tList) - g_tConnect << ", \"first_command_s\": "
              << (g_tFirst < 0 ? 0 : g_tFirst - g_tConnect) << ", \"last_answer_first_s\": "
              << (g_tLastAnswerFirst < 0 ? g_tEnd : g_tLastAnswerFirst) - g_tConnect << ", \"dropped\": " << g_dropped
              << ", \"recoveries\": " << g_recoveries << ", \"timeouts\": " << g_timeouts << "}" << std::endl;
    return 0;
}
