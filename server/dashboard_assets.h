// The dashboard's page, script and style sheet, compiled into apqd (no files to find at run
// time). The script draws with SVG and reads only the dashboard's JSON endpoints.
#ifndef APQ_SERVER_DASHBOARD_ASSETS_H_
#define APQ_SERVER_DASHBOARD_ASSETS_H_

#include <string>

namespace apq::server {

const std::string& DashboardIndexHtml();
const std::string& DashboardScript();
const std::string& DashboardStyle();

}  // namespace apq::server

#endif  // APQ_SERVER_DASHBOARD_ASSETS_H_
